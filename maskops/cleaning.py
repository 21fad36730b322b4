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

from maskops.corrections import LabelFileError, check_target, read_label_file
from maskops.problems import Problem

EXCLUSION_COLUMNS = ("profile_id", "stem", "reason")


@dataclass(frozen=True)
class CleaningRules:
    drop_unreadable: bool = True
    drop_duplicate_images: bool = True
    age_band: tuple[int, int] | None = (57, 59)  # inclusive; None keeps every age

    def __post_init__(self) -> None:
        if self.age_band is not None and not (len(self.age_band) == 2 and self.age_band[0] <= self.age_band[1]):
            raise ValueError(f"age_band must be (low, high) with low <= high, got {self.age_band}")


def read_exclusions(path: str | Path, manifest: pd.DataFrame) -> pd.DataFrame:
    """Validated exclusions: profile_id, stem ('' for the whole profile), reason."""
    path = Path(path)
    problems: list[Problem] = []
    table = read_label_file(path, EXCLUSION_COLUMNS, problems)
    profiles, images = set(manifest["profile_id"]), set(manifest["image_id"])
    keep = []
    for i, rec in enumerate(table.to_dict("records")):
        where = f"{path} line {i + 2}"
        if not check_target(where, rec["profile_id"], rec["stem"], profiles, images, problems):
            continue
        if not rec["reason"]:
            problems.append(Problem(where, "no reason given", "say why it is excluded, for the next reviewer"))
            continue
        keep.append(i)
    if problems:
        raise LabelFileError(path, problems)
    return table.iloc[keep].drop_duplicates(["profile_id", "stem"]).reset_index(drop=True)


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
    return manifest[reason == ""].reset_index(drop=True), removed.reset_index(drop=True)


def removal_summary(removed: pd.DataFrame) -> pd.DataFrame:
    """Images and profiles removed per reason kind (exclusions, unreadable, duplicate, age band)."""
    kind = removed["removal"].str.replace(r"^(exclusions\.csv|duplicate of|age in).*$", r"\1", regex=True)
    summary = removed.assign(kind=kind).groupby("kind").agg(images=("image_id", "size"), profiles=("profile_id", "nunique"))
    return summary.reset_index()
