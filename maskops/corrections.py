"""Human label corrections (labels/corrections.csv) and how they apply to a manifest.

    profile_id,stem,field,value,reason
    000123_female_Asian_45,,age,62,"grey hair, wrinkles: looks over 60"
    000124_male_Asian_20,,gender,female,long hair and lipstick in every photo
    000125_male_Asian_33,incorrect_mask,mask,not_wear,files swapped
    000125_male_Asian_33,normal,mask,incorrect,files swapped

Gender and age belong to a person (leave stem empty: the correction applies to all 7
images); mask belongs to one image. A swap of incorrect_mask and normal is two mask rows.
A missing file means no corrections. Raw data is never touched: the relabeled manifest
keeps the original labels in raw_* columns and says where each label came from.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from maskops.csv_tables import read_csv_table
from maskops.labels import PROFILE_STEMS, LabelError, MaskState, age_group_array, encode_array, parse_age, parse_gender
from maskops.problems import Problem, ProblemReport

CORRECTION_COLUMNS = ("profile_id", "stem", "field", "value", "reason")
FIELDS = ("gender", "age", "mask")
MASK_VALUES = {"wear": MaskState.WEAR, "incorrect": MaskState.INCORRECT, "not_wear": MaskState.NOT_WEAR, "normal": MaskState.NOT_WEAR}
LABEL_COLUMNS = ("mask", "gender", "age", "age_group", "class_id")


class LabelFileError(ProblemReport):
    """A human-edited label file (corrections.csv, exclusions.csv) has problems."""

    what = "label file"


def parse_mask(text: str) -> MaskState:
    try:
        return MASK_VALUES[text.strip().lower()]
    except KeyError:
        raise LabelError(f"unknown mask state {text!r}; expected one of {sorted(MASK_VALUES)}") from None


def read_label_table(path: str | Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """A human-edited CSV as strings plus the `line` each row starts on (maskops.csv_tables); a missing or empty file
    is an empty table with `columns`, one that cannot be read a LabelFileError. The header is not checked here:
    parse_* and the data-quality contract do that."""
    path = Path(path)
    empty = pd.DataFrame({**{c: pd.Series(dtype="string") for c in columns}, "line": pd.Series(dtype="int64")})
    if not path.exists():
        return empty
    table, problems = read_csv_table(path, str(path))
    if problems:
        raise LabelFileError(path, problems)
    return empty if table is None else table


def missing_columns(table: pd.DataFrame, columns: tuple[str, ...], source: str) -> list[Problem]:
    missing = [c for c in columns if c not in table.columns]
    if not missing:
        return []
    found = [c for c in table.columns if c != "line"]
    return [Problem(source, f"missing column(s) {missing}; found {found}", f"the header must be {','.join(columns)}")]


def target_problem(profile: str, stem: str, profiles: set[str], images: set[str]) -> tuple[str, str] | None:
    """(message, fix) if (profile, stem) names no profile or image of the manifest."""
    if profile not in profiles:
        return f"unknown profile {profile!r}", "use a profile_id (folder name) from the raw dataset"
    if stem and f"{profile}/{stem}" not in images:
        return f"unknown image {profile}/{stem}", f"stem must be one of {', '.join(PROFILE_STEMS)}, or empty for the whole profile"
    return None


def label_file_problems(
    table: pd.DataFrame, manifest: pd.DataFrame, source: str, columns: tuple[str, ...], check_row: Callable[[dict], tuple[str, str] | None]
) -> list[tuple[int | None, Problem]]:
    """Every problem of a label file, with its line (None for the whole file): the header, the profile or image each
    row names, then `check_row(row)` -> (message, fix) or None for what a row of this file must say."""
    header = missing_columns(table, columns, source)
    if header:
        return [(None, p) for p in header]
    profiles, images = set(manifest["profile_id"]), set(manifest["image_id"])
    found: list[tuple[int | None, Problem]] = []
    for rec in table.to_dict("records"):
        issue = target_problem(rec["profile_id"], rec["stem"], profiles, images) or check_row(rec)
        if issue:
            found.append((int(rec["line"]), Problem(f"{source} line {int(rec['line'])}", *issue)))
    return found


def correction_problems(table: pd.DataFrame, manifest: pd.DataFrame, source: str) -> list[tuple[int | None, Problem]]:
    """Every problem of a corrections table, with the line it is on (None for the whole file)."""
    parsed = []

    def check(rec: dict) -> tuple[str, str] | None:
        field, stem = rec["field"].lower(), rec["stem"]
        if field not in FIELDS:
            return f"unknown field {rec['field']!r}", f"field must be one of {', '.join(FIELDS)}"
        if field in ("gender", "age") and stem:
            return f"{field} belongs to the person, not to image {stem!r}", "leave stem empty; the correction applies to all 7 images"
        if field == "mask" and not stem:
            return "a mask correction needs the image", "put the image stem (e.g. incorrect_mask) in the stem column"
        if not rec["reason"]:
            return "no reason given", "say why the label is wrong, for the next reviewer"
        try:
            value = {"gender": parse_gender, "age": parse_age, "mask": parse_mask}[field](rec["value"])
        except LabelError as exc:
            return str(exc), "write a valid value for the field"
        parsed.append((rec["profile_id"], stem, field, int(value), int(rec["line"])))
        return None

    found = label_file_problems(table, manifest, source, CORRECTION_COLUMNS, check)
    frame = pd.DataFrame(parsed, columns=["profile_id", "stem", "field", "value", "line"])
    for _, group in frame.groupby(["profile_id", "stem", "field"]):
        if group["value"].nunique() > 1:
            first = group.iloc[0]
            target = first["profile_id"] + (f"/{first['stem']}" if first["stem"] else "")
            lines = ", ".join(map(str, group["line"]))
            conflict = Problem(f"{source} lines {lines}", f"conflicting {first['field']} values for {target}", "keep one row per label")
            found.extend((int(line), conflict) for line in group["line"])
    return found


def parse_corrections(table: pd.DataFrame, manifest: pd.DataFrame, source: str | Path) -> pd.DataFrame:
    """Validated corrections (raises LabelFileError listing every problem): one row per
    (profile_id, stem, field) with a parsed integer value, its reason and line."""
    problems = correction_problems(table, manifest, str(source))
    if problems:
        unique = list(dict.fromkeys(p for _, p in problems))
        raise LabelFileError(source, unique)
    if table.empty:
        return pd.DataFrame(columns=["profile_id", "stem", "field", "value", "reason", "line"])
    parse = {"gender": parse_gender, "age": parse_age, "mask": parse_mask}
    out = table.assign(field=table["field"].str.lower())
    out["value"] = [int(parse[f](v)) for f, v in zip(out["field"], out["value"], strict=True)]
    out = out[["profile_id", "stem", "field", "value", "reason", "line"]]
    return out.drop_duplicates(["profile_id", "stem", "field"], ignore_index=True)


def read_corrections(path: str | Path, manifest: pd.DataFrame) -> pd.DataFrame:
    """parse_corrections of the file at `path` (a missing file means no corrections)."""
    return parse_corrections(read_label_table(path, CORRECTION_COLUMNS), manifest, path)


def apply_corrections(manifest: pd.DataFrame, corrections: pd.DataFrame) -> pd.DataFrame:
    """The manifest with corrected labels, raw_* columns holding the originals, and label_source."""
    out = manifest.copy()
    for col in LABEL_COLUMNS:
        out[f"raw_{col}"] = manifest[col]
    out["label_source"] = "raw"
    out["correction_reason"] = ""
    for row in corrections.itertuples():
        hit = out["profile_id"] == row.profile_id
        if row.stem:
            hit &= out["stem"] == row.stem
        out.loc[hit, row.field] = row.value
        out.loc[hit, "label_source"] = "corrections.csv"
        reason = f"{row.field}: {row.reason}"
        out.loc[hit, "correction_reason"] = out.loc[hit, "correction_reason"].map(
            lambda r, reason=reason: f"{r}; {reason}" if r else reason
        )
    out["age_group"] = age_group_array(out["age"].to_numpy()).astype("int8")
    out["class_id"] = encode_array(out["mask"], out["gender"], out["age_group"]).astype("int8")
    changed = (out[list(LABEL_COLUMNS)].to_numpy() != manifest[list(LABEL_COLUMNS)].to_numpy()).any(axis=1)
    out["label_changed"] = changed
    return out.astype({"label_source": "string", "correction_reason": "string"})
