"""The review loop's bookkeeping: what is left to review, and a reviewer's decisions written to
labels/corrections.csv (a correction) and labels/reviewed.csv (every decision, so a label a person
confirmed is not asked about again while it stays the same).

Files are rewritten atomically and corrections are validated as a whole before they are written,
so the file the pipeline reads is never half-written or invalid.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
from filelock import FileLock

from maskops.corrections import CORRECTION_COLUMNS, correction_problems, read_label_table
from maskops.files import write_csv_atomic

REVIEWED_COLUMNS = ("profile_id", "stem", "field", "given", "decision", "value", "reviewer", "decided_at")
DECISIONS = ("correct", "keep")
KEY = ["profile_id", "stem", "field", "given"]


class DecisionError(ValueError):
    """A decision that cannot be recorded; the message says why and what to do."""


def read_reviewed(labels_dir: str | Path) -> pd.DataFrame:
    table = read_label_table(Path(labels_dir) / "reviewed.csv", REVIEWED_COLUMNS)
    return table[list(REVIEWED_COLUMNS)]


def pending(issues: pd.DataFrame, labels_dir: str | Path) -> pd.DataFrame:
    """The suspects nobody has decided on yet (for the label they have now), most suspicious first."""
    done = read_reviewed(labels_dir)[KEY].drop_duplicates()
    marked = issues.merge(done.assign(_done=True), on=KEY, how="left")
    return marked[marked["_done"].isna()].drop(columns="_done").reset_index(drop=True)


def record_decision(
    labels_dir: str | Path,
    manifest: pd.DataFrame,
    *,
    profile_id: str,
    stem: str,
    field: str,
    given: str,
    decision: str,
    value: str = "",
    reviewer: str = "reviewer",
) -> None:
    """Record one decision on a suspect. `correct` writes a correction of `field` to `value` (for an age group:
    the person's age in years); `keep` confirms the label. Both go to reviewed.csv."""
    labels = Path(labels_dir)
    labels.mkdir(parents=True, exist_ok=True)
    with FileLock(labels / ".review.lock"):  # two reviewers at once: one read-modify-write after the other
        _record(labels, manifest, profile_id, stem, field, given, decision, value, reviewer)


def _record(labels: Path, manifest: pd.DataFrame, profile_id: str, stem: str, field: str, given: str, decision: str, value: str,
            reviewer: str) -> None:  # fmt: skip
    if decision not in DECISIONS:
        raise DecisionError(f"decision must be one of {DECISIONS}, got {decision!r}")
    if field not in ("mask", "gender", "age_group"):
        raise DecisionError(f"unknown field {field!r}: expected mask, gender or age_group")
    value = str(value).strip()
    if decision == "correct":
        if not value:
            raise DecisionError("a correction needs the right value" + (" (the person's age in years)" if field == "age_group" else ""))
        column = "age" if field == "age_group" else field
        reason = f"{reviewer} in maskops review: {given} looked wrong"
        current = read_label_table(labels / "corrections.csv", CORRECTION_COLUMNS)
        same = (current["profile_id"] == profile_id) & (current["stem"] == stem) & (current["field"].str.lower() == column)
        row = {"profile_id": profile_id, "stem": stem, "field": column, "value": value, "reason": reason}
        table = pd.concat([current[~same], pd.DataFrame([row])], ignore_index=True)  # a newer decision replaces an older one
        table["line"] = range(2, len(table) + 2)
        problems = [p for line, p in correction_problems(table, manifest, "corrections.csv") if line == table["line"].iloc[-1]]
        if problems:
            raise DecisionError("; ".join(f"{p.message} ({p.fix})" for p in problems))
        write_csv_atomic(table[list(CORRECTION_COLUMNS)], labels / "corrections.csv")
    reviewed = read_reviewed(labels)
    entry = {"profile_id": profile_id, "stem": stem, "field": field, "given": given, "decision": decision, "value": value,
             "reviewer": reviewer, "decided_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}  # fmt: skip
    write_csv_atomic(pd.concat([reviewed, pd.DataFrame([entry])], ignore_index=True), labels / "reviewed.csv")
