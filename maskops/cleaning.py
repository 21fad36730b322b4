"""Cleaning: labels/exclusions.csv plus rule-based removals, each one counted.

    profile_id,stem,reason
    000321_female_Asian_25,,not a real person (poster)
    000322_male_Asian_41,mask4,another person in the photo

Rules (each can be switched off): unreadable images, exact duplicates by content hash
(the first by image_id is kept), and profiles whose age lies in a band near the 60
boundary (the original dropped 57..59).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from maskops.corrections import LabelFileError, label_file_problems, read_label_table
from maskops.options import option
from maskops.problems import Problem

EXCLUSION_COLUMNS = ("profile_id", "stem", "reason")


class CleaningError(ValueError):
    """The exclusions and rules together leave nothing."""


@dataclass(frozen=True)
class CleaningRules:
    drop_unreadable: bool = option(True, "Drop images that cannot be decoded.")
    drop_duplicate_images: bool = option(True, "Drop exact duplicates by content hash (the first image_id stays).")
    drop_age_band: bool = option(True, "Drop profiles whose age is in [age_band_low, age_band_high] (the original dropped 57..59).")
    age_band_low: int = option(57, "Lowest age dropped (inclusive).")
    age_band_high: int = option(59, "Highest age dropped (inclusive).")

    def __post_init__(self) -> None:
        if self.age_band_low > self.age_band_high:
            raise ValueError(f"age_band_low must be <= age_band_high, got {self.age_band_low} > {self.age_band_high}")

    @property
    def age_band(self) -> tuple[int, int] | None:
        return (self.age_band_low, self.age_band_high) if self.drop_age_band else None


def exclusion_problems(table: pd.DataFrame, manifest: pd.DataFrame, source: str) -> list[tuple[int | None, Problem]]:
    """Every problem of an exclusions table, with the line it is on (None for the whole file)."""

    def check(rec: dict) -> tuple[str, str] | None:
        return None if rec["reason"] else ("no reason given", "say why it is excluded, for the next reviewer")

    return label_file_problems(table, manifest, source, EXCLUSION_COLUMNS, check)


def parse_exclusions(table: pd.DataFrame, manifest: pd.DataFrame, source: str | Path) -> pd.DataFrame:
    """Validated exclusions (raises LabelFileError listing every problem): profile_id, stem ('' for the whole profile), reason."""
    problems = exclusion_problems(table, manifest, str(source))
    if problems:
        raise LabelFileError(source, [p for _, p in problems])
    if table.empty:
        return pd.DataFrame(columns=list(EXCLUSION_COLUMNS))
    whole = set(table.loc[table["stem"].astype(str).str.strip() == "", "profile_id"].astype(str).str.strip())
    profiles = set(manifest["profile_id"].astype(str))
    if profiles and profiles <= whole:
        raise LabelFileError(source, [Problem(str(source), f"excludes every one of the {len(profiles)} profiles: nothing would be left to train on",
                                              "keep the profiles that are fine: delete their rows (an empty file excludes nothing)")])  # fmt: skip
    return table[list(EXCLUSION_COLUMNS)].drop_duplicates(["profile_id", "stem"]).reset_index(drop=True)


def read_exclusions(path: str | Path, manifest: pd.DataFrame) -> pd.DataFrame:
    """parse_exclusions of the file at `path` (a missing file means no exclusions)."""
    return parse_exclusions(read_label_table(path, EXCLUSION_COLUMNS), manifest, path)


def clean(manifest: pd.DataFrame, exclusions: pd.DataFrame, rules: CleaningRules) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept rows, removed rows with a `removal` reason). The first applicable reason wins."""
    reason = pd.Series("", index=manifest.index, dtype="string")

    def mark(hit: pd.Series, why: pd.Series | str) -> None:
        todo = hit & (reason == "")
        reason[todo] = why[todo] if isinstance(why, pd.Series) else why

    for row in exclusions.itertuples():
        hit = manifest["profile_id"] == row.profile_id
        if row.stem:
            hit &= manifest["stem"] == row.stem
        mark(hit, f"exclusions.csv: {row.reason}")
    if rules.drop_unreadable:
        mark(~manifest["readable"].astype(bool), "unreadable image")
    if rules.drop_duplicate_images:
        order = manifest.sort_values("image_id")
        first = order.groupby("content_hash")["image_id"].transform("first").reindex(manifest.index)
        mark(manifest["image_id"] != first, "duplicate of " + first.astype("string"))
    if rules.age_band is not None:
        low, high = rules.age_band
        mark(manifest["age"].between(low, high), f"age in {low}..{high}")
    removed = manifest[reason != ""].assign(removal=reason[reason != ""])
    if len(manifest) and len(removed) == len(manifest):
        counts = removal_summary(removed).set_index("kind")["images"].to_dict()
        raise CleaningError(f"cleaning would remove all {len(manifest)} images ({counts}); nothing would be left to train on. "
                            "fix: delete rows from labels/exclusions.csv or switch rules off in the cleaned_dataset config")  # fmt: skip
    return manifest[reason == ""].reset_index(drop=True), removed.reset_index(drop=True)


def removal_summary(removed: pd.DataFrame) -> pd.DataFrame:
    """Images and profiles removed per reason kind (exclusions, unreadable, duplicate, age band)."""
    kind = removed["removal"].str.replace(r"^(exclusions\.csv|duplicate of|age in).*$", r"\1", regex=True)
    summary = removed.assign(kind=kind).groupby("kind").agg(images=("image_id", "size"), profiles=("profile_id", "nunique"))
    return summary.reset_index()
