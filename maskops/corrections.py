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

from pathlib import Path

import pandas as pd

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


def read_label_file(path: Path, columns: tuple[str, ...], problems: list[Problem]) -> pd.DataFrame:
    """Read a human-edited CSV as strings; a missing file is an empty table."""
    if not path.exists():
        return pd.DataFrame(columns=list(columns))
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        problems.append(Problem(str(path), f"cannot be parsed as CSV ({exc})", "save it as UTF-8 CSV with a header row"))
        return pd.DataFrame(columns=list(columns))
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=list(columns))
    missing = [c for c in columns if c not in table.columns]
    if missing:
        problems.append(
            Problem(str(path), f"missing column(s) {missing}; found {list(table.columns)}", f"the header must be {','.join(columns)}")
        )
        return pd.DataFrame(columns=list(columns))
    return table[list(columns)].apply(lambda col: col.str.strip())


def check_target(where: str, profile: str, stem: str, profiles: set[str], images: set[str], problems: list[Problem]) -> bool:
    """Whether (profile, stem) names a profile or image of the manifest; records a problem if not."""
    if profile not in profiles:
        problems.append(Problem(where, f"unknown profile {profile!r}", "use a profile_id (folder name) from the raw dataset"))
        return False
    if stem and f"{profile}/{stem}" not in images:
        known = ", ".join(PROFILE_STEMS)
        problems.append(Problem(where, f"unknown image {profile}/{stem}", f"stem must be one of {known}, or empty for the whole profile"))
        return False
    return True


def read_corrections(path: str | Path, manifest: pd.DataFrame) -> pd.DataFrame:
    """Validated corrections: one row per (profile_id, stem, field) with a parsed integer value and its line."""
    path = Path(path)
    problems: list[Problem] = []
    table = read_label_file(path, CORRECTION_COLUMNS, problems)
    profiles, images = set(manifest["profile_id"]), set(manifest["image_id"])
    rows = []
    for i, rec in enumerate(table.to_dict("records")):
        where = f"{path} line {i + 2}"
        field, stem = rec["field"].lower(), rec["stem"]
        if not check_target(where, rec["profile_id"], stem, profiles, images, problems):
            continue
        if field not in FIELDS:
            problems.append(Problem(where, f"unknown field {rec['field']!r}", f"field must be one of {', '.join(FIELDS)}"))
            continue
        if field in ("gender", "age") and stem:
            problems.append(
                Problem(
                    where,
                    f"{field} belongs to the person, not to image {stem!r}",
                    "leave stem empty; the correction applies to all 7 images",
                )
            )
            continue
        if field == "mask" and not stem:
            problems.append(
                Problem(where, "a mask correction needs the image", "put the image stem (e.g. incorrect_mask) in the stem column")
            )
            continue
        if not rec["reason"]:
            problems.append(Problem(where, "no reason given", "say why the label is wrong, for the next reviewer"))
            continue
        try:
            value = {"gender": parse_gender, "age": parse_age, "mask": parse_mask}[field](rec["value"])
        except LabelError as exc:
            problems.append(Problem(where, str(exc), "write a valid value for the field"))
            continue
        rows.append(
            {"profile_id": rec["profile_id"], "stem": stem, "field": field, "value": int(value), "reason": rec["reason"], "line": i + 2}
        )
    result = pd.DataFrame(rows, columns=["profile_id", "stem", "field", "value", "reason", "line"])
    for _, group in result.groupby(["profile_id", "stem", "field"]):
        if group["value"].nunique() > 1:
            lines = ", ".join(map(str, group["line"]))
            first = group.iloc[0]
            target = first["profile_id"] + (f"/{first['stem']}" if first["stem"] else "")
            problems.append(Problem(f"{path} lines {lines}", f"conflicting {first['field']} values for {target}", "keep one row per label"))
    if problems:
        raise LabelFileError(path, problems)
    return result.drop_duplicates(["profile_id", "stem", "field"], ignore_index=True)


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
