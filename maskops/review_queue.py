"""The review loop's bookkeeping: what is left to review, and a reviewer's decisions written to
labels/corrections.csv (a correction) and labels/reviewed.csv (every decision, so a label a person
confirmed is not asked about again while it stays the same).

Every decision is checked against the suspect it answers (label_issues): it must name one, a correction must
change the label, and an age must fall in the age group chosen. Files are rewritten atomically, under
`ReviewLock`, with spreadsheet formulas escaped; corrections are validated as a whole before they are
written, so the file the pipeline reads is never half-written or invalid.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import logging
import os
import re
import time
from pathlib import Path

import pandas as pd

from maskops.corrections import CORRECTION_COLUMNS, LabelFileError, correction_problems, missing_columns, read_label_table
from maskops.csv_safety import escape_formula, escape_formulas
from maskops.files import write_csv_atomic
from maskops.label_issues import FIELDS as FIELD_ENUMS
from maskops.labels import AGE_WORDS_BY_NAME as AGE_GROUP_WORDS
from maskops.labels import AgeGroup, LabelError, age_group, parse_age

log = logging.getLogger(__name__)

REVIEWED_COLUMNS = ("profile_id", "stem", "field", "given", "decision", "value", "reviewer", "decided_at")
# beside them: the corrections.csv rows a decision replaced or removed (a JSON list), so undo puts them back as they
# were; empty for a decision that changed nothing there, and for one recorded before this column existed (unknown:
# undo then falls back on earlier decisions).
REPLACED = "replaced"
DECISIONS = ("correct", "keep")
KEY = ["profile_id", "stem", "field", "given"]
FIELD_VALUES = {field: tuple(m.name.lower() for m in enum) for field, enum in FIELD_ENUMS.items()}
MAX_TEXT = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class DecisionError(ValueError):
    """A decision that cannot be recorded; the message says why and what to do."""


def reviewer_name(name: str) -> str:
    """The name recorded with each decision: one printable line, without the spaces around it (the files are read
    stripped, so "ana " would never find its own decisions to undo)."""
    name = check_text("reviewer", name).strip()
    if not name:
        raise DecisionError("the reviewer's name is empty: pass --reviewer NAME")
    return name


def label_words(field: str, value: str) -> str:
    """A label as the page and Dagster write it: age groups as <30 / 30-59 / >=60, the rest as they are."""
    return AGE_GROUP_WORDS.get(value, value) if field == "age_group" else value


def check_text(name: str, text: str, limit: int = MAX_TEXT) -> str:
    """`text` if it is short, one line and printable; DecisionError otherwise."""
    if not isinstance(text, str):
        raise DecisionError(f"{name} must be text")
    if len(text) > limit:
        raise DecisionError(f"{name} is {len(text)} characters long; at most {limit} are accepted")
    if _CONTROL.search(text):
        raise DecisionError(f"{name} contains control characters (tabs, newlines, ...): send plain one-line text")
    return text


class ReviewLock:
    """labels/.review.lock while one process rewrites the review files: a file holding the writer's pid, locked
    with flock and removed on release. The kernel drops an flock when its process dies, so a file left behind
    by a killed writer is taken over with a warning instead of blocking every later decision."""

    def __init__(self, labels_dir: str | Path, timeout: float = 30.0):
        self.path, self.timeout, self._fd = Path(labels_dir) / ".review.lock", timeout, None

    def __enter__(self) -> ReviewLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.timeout
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() > deadline:
                    raise DecisionError(f"{self.path} is held by pid {self.holder()}: another review is writing, try again") from None
                time.sleep(0.05)
                continue
            if not self._still_there(fd):  # its holder removed it while we waited: lock the file that is there now
                os.close(fd)
                continue
            left = os.read(fd, 64).decode(errors="replace").strip()
            if left:
                log.warning("%s was left behind by pid %s, which ended while writing; taking it over", self.path, left)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            self._fd = fd
            return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # before unlocking, so a waiter that locks the old file sees it is gone
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def _still_there(self, fd: int) -> bool:
        try:
            return os.fstat(fd).st_ino == self.path.stat().st_ino
        except FileNotFoundError:
            return False

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"


def read_labels(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """A label file the review rewrites, checked before anything is written: a file people broke (not CSV, not UTF-8,
    a header without `columns`) is a DecisionError that names it and the fix, which the page shows; a symbolic link to
    nothing (or a loop) is an OSError here, before either file is written, not when the second one is."""
    if path.is_symlink() and not path.exists():
        raise OSError(errno.ELOOP, "a symbolic link to a file that does not exist, or a loop", str(path))
    try:
        table = read_label_table(path, columns)
        problems = missing_columns(table, columns, str(path))
    except LabelFileError as exc:
        problems = exc.problems
    if problems:
        raise DecisionError("; ".join(f"{p.path}: {p.message} (fix: {p.fix})" for p in problems))
    return table


def read_reviewed(labels_dir: str | Path) -> pd.DataFrame:
    """reviewed.csv, with its REPLACED column (empty where the file predates it)."""
    table = read_labels(Path(labels_dir) / "reviewed.csv", REVIEWED_COLUMNS)
    if REPLACED not in table.columns:
        table[REPLACED] = ""
    return table[[*REVIEWED_COLUMNS, REPLACED]]


def pending(issues: pd.DataFrame, labels_dir: str | Path) -> pd.DataFrame:
    """The suspects nobody has decided on yet (for the label they have now), most suspicious first."""
    done = read_reviewed(labels_dir)[KEY].drop_duplicates()
    marked = issues.merge(done.assign(_done=True), on=KEY, how="left")
    return marked[marked["_done"].isna()].drop(columns="_done").reset_index(drop=True)


def suspect(issues: pd.DataFrame, profile_id: str, stem: str, field: str, given: str) -> pd.Series:
    """The row of `issues` a decision answers; DecisionError if there is none."""
    hit = issues[(issues["profile_id"] == profile_id) & (issues["stem"] == stem) & (issues["field"] == field) & (issues["given"] == given)]
    if hit.empty:
        target = profile_id + (f"/{stem}" if stem else "")
        raise DecisionError(f"no suspect {target} with {field} labelled {given!r} in label_issues: reload the page")
    return hit.iloc[0]


def corrected_value(field: str, given: str, target: str, value: str) -> tuple[str, str]:
    """(column, value) of corrections.csv for correcting `field` from `given` to `target` (an age for age groups)."""
    values = FIELD_VALUES[field]
    if target not in values:
        raise DecisionError(f"cannot correct {field} to {target!r}: expected one of {', '.join(label_words(field, v) for v in values)}")
    if target == given:
        raise DecisionError(f"{field} is already {label_words(field, given)}: choose 'Label is right', or correct it to another value")
    if field != "age_group":
        if value and value != target:
            raise DecisionError(f"the card corrects {field} to {target}, but the value sent is {value!r}: reload the page")
        return field, target
    if not value:
        raise DecisionError(f"type the person's age in years (an age in {label_words(field, target)}) to correct the age group")
    try:
        age = parse_age(value)
    except LabelError as exc:
        raise DecisionError(f"{exc}: type the person's age in years") from None
    group = AgeGroup(age_group(age)).name.lower()
    if group != target:
        raise DecisionError(
            f"age {age} is in {label_words(field, group)}, not {label_words(field, target)}: "
            f"type an age in {label_words(field, target)}, or correct to {label_words(field, group)}"
        )
    return "age", str(age)


def record_decision(
    labels_dir: str | Path,
    manifest: pd.DataFrame,
    issues: pd.DataFrame,
    *,
    profile_id: str,
    stem: str,
    field: str,
    given: str,
    decision: str,
    value: str = "",
    target: str = "",
    reviewer: str = "reviewer",
) -> None:
    """Record one decision on a suspect of `issues`. `correct` changes `field` to `target` (by default the
    suggested value; for an age group, `value` is the person's age in years and must lie in that group); `keep`
    confirms the label. Both go to reviewed.csv, with the corrections.csv rows they replaced (for undo); a correction
    also to corrections.csv, replacing an older one. A suspect decided before takes the new decision: `keep` after
    corrections puts corrections.csv back as it was before the first of them."""
    texts = {"profile_id": profile_id, "stem": stem, "field": field, "given": given, "decision": decision, "value": value,
             "target": target, "reviewer": reviewer}  # fmt: skip
    for name, text in texts.items():
        check_text(name, text)
    reviewer = texts["reviewer"] = reviewer_name(reviewer)
    if decision not in DECISIONS:
        raise DecisionError(f"decision must be one of {DECISIONS}, got {decision!r}")
    issue = suspect(issues, profile_id, stem, field, given)
    value = value.strip()
    column = ""  # the corrections.csv field a correction writes
    if decision == "correct":
        column, value = corrected_value(field, given, target or str(issue["suggested"]), value)
    elif value or target:
        raise DecisionError("'Label is right' takes no value: send an empty value and target")
    labels = Path(labels_dir)
    with ReviewLock(labels):  # two reviewers at once: one read-modify-write after the other
        reviewed = read_reviewed(labels)  # both files read (and checked) before either is written
        # a suspect decided before (a changed mind, a stale page, a second reviewer): the new decision supersedes it
        earlier = reviewed[(reviewed[KEY] == pd.Series(texts)[KEY]).all(axis=1)]
        recorded = ""
        if column:
            reason = f"{reviewer} in maskops review: {given} looked wrong"
            replaced = _write_correction(labels, manifest, profile_id, stem, column, [{"value": value, "reason": reason}])
            recorded = json.dumps(replaced, ensure_ascii=False)
        elif not earlier.empty and earlier["decision"].iloc[-1] == "correct":
            # "the label is right" after corrections of it: corrections.csv back as it was before the first of them
            since_keep = earlier.iloc[_after_last_keep(earlier)]
            first = since_keep[REPLACED].iloc[0]
            before = json.loads(first) if first else []  # unknown (recorded before REPLACED existed): the correction leaves
            removed = _write_correction(labels, manifest, profile_id, stem, _column(field), before, new=False)
            recorded = json.dumps(removed, ensure_ascii=False)
        entry = {**{k: texts[k] for k in KEY}, "decision": decision, "value": value, "reviewer": reviewer,
                 "decided_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), REPLACED: recorded}  # fmt: skip
        _write(pd.concat([reviewed, pd.DataFrame([entry])], ignore_index=True), labels / "reviewed.csv")


def undo_last(labels_dir: str | Path, manifest: pd.DataFrame, reviewer: str, issues: pd.DataFrame | None = None) -> dict:
    """Take back `reviewer`'s last decision: its row leaves reviewed.csv and corrections.csv is put back as it was
    before it: the rows it replaced or removed (hand-written or reviewed, every column) come back in place, a row it
    added leaves. Refused while someone else's later decision covers the same label, and when `issues` (label_issues
    as the page shows them) lists the label with another value: the pipeline has run on the decision since, and the
    page's cards of that label would contradict it. Returns the decision undone."""
    labels = Path(labels_dir)
    reviewer = reviewer_name(reviewer)
    with ReviewLock(labels):
        read_labels(labels / "corrections.csv", CORRECTION_COLUMNS)  # both files read (and checked) before either is written
        reviewed = read_reviewed(labels)
        mine = reviewed.index[reviewed["reviewer"] == escape_formula(reviewer)]  # as it was written
        if mine.empty:
            raise DecisionError(f"{reviewer} has no decision to undo")
        last = reviewed.loc[mine[-1]].to_dict()
        rest = reviewed.drop(index=mine[-1])
        column, recorded = _column(last["field"]), last[REPLACED]
        label = (rest["profile_id"] == last["profile_id"]) & (rest["stem"] == last["stem"]) & (rest["field"] == last["field"])
        since = rest[label & (rest.index > mine[-1])]
        if not since.empty:  # undoing under a later decision would put back a label that decision replaced
            later = since.iloc[0]
            raise DecisionError(
                f"{later['reviewer']} decided the same label after this ({later['decision']}, {later['decided_at']}): "
                f"{later['reviewer']}'s decision is undone first, or decide this label again instead"
            )
        if issues is not None:
            listed = issues[
                (issues["profile_id"] == last["profile_id"]) & (issues["stem"] == last["stem"]) & (issues["field"] == last["field"])
            ]
            if not listed.empty and (listed["given"] != last["given"]).any():
                raise DecisionError(
                    f"the pipeline has run since this decision ({last['field']} is now {label_words(last['field'], listed['given'].iloc[0])}): "
                    "decide the label's new card instead of undoing"
                )
        # reviewed.csv first: if the second write never happens, the suspect is back on the page, not silently lost
        _write(rest, labels / "reviewed.csv")
        if recorded:  # what the decision replaced or removed comes back, as it was
            _write_correction(labels, manifest, last["profile_id"], last["stem"], column, json.loads(recorded), new=False)
        elif last["decision"] == "correct":  # recorded before REPLACED existed: an earlier reviewed correction, if any
            earlier = rest[label & (rest["decision"] == "correct")].tail(1).to_dict("records")
            before = []
            if earlier:
                reason = f"{earlier[0]['reviewer']} in maskops review: {earlier[0]['given']} looked wrong"
                before = [
                    {
                        "profile_id": last["profile_id"],
                        "stem": last["stem"],
                        "field": column,
                        "value": earlier[0]["value"],
                        "reason": reason,
                    }
                ]
            _write_correction(labels, manifest, last["profile_id"], last["stem"], column, before, new=False)
    return {k: v for k, v in last.items() if k != REPLACED}


def _column(field: str) -> str:
    """The corrections.csv field that corrects a label_issues field."""
    return "age" if field == "age_group" else field


def _after_last_keep(decisions: pd.DataFrame) -> slice:
    """The positions of `decisions` (one label's, oldest first) after its last `keep`."""
    keeps = [i for i, d in enumerate(decisions["decision"]) if d == "keep"]
    return slice(keeps[-1] + 1 if keeps else 0, None)


def _write_correction(
    labels: Path, manifest: pd.DataFrame, profile_id: str, stem: str, column: str, rows: list[dict], new: bool = True
) -> list[dict]:
    """corrections.csv with the rows of (profile_id, stem, column) replaced by `rows`, in place (where the first of
    them was, else at the end); returns the rows replaced, every column. A `new` row (a reviewer's: its value and
    reason) is validated and escaped against spreadsheet formulas; rows put back (undo) and the rows people wrote are
    written as they were read, so a hand-written "+54" stays an age. Columns people added beside CORRECTION_COLUMNS
    (a note, a ticket) are kept."""
    current = read_labels(labels / "corrections.csv", CORRECTION_COLUMNS)
    columns = [*CORRECTION_COLUMNS, *(c for c in current.columns if c not in (*CORRECTION_COLUMNS, "line"))]
    same = ((current["profile_id"] == profile_id) & (current["stem"] == stem) & (current["field"].str.lower() == column)).to_numpy()
    replaced = current.loc[same, columns].to_dict("records")
    key = {"profile_id": profile_id, "stem": stem, "field": column} if new else {}
    added = pd.DataFrame([{c: row.get(c, "") for c in columns} | key for row in rows], columns=columns).fillna("")
    kept = current.loc[~same, columns]
    at = int((~same)[: same.argmax()].sum()) if same.any() else len(kept)  # the first replaced row's place among the kept
    table = pd.concat([kept.iloc[:at], escape_formulas(added) if new else added, kept.iloc[at:]], ignore_index=True).fillna("")
    table["line"] = range(2, len(table) + 2)
    if new and rows:
        lines = set(table["line"].iloc[at : at + len(rows)])
        problems = [p for line, p in correction_problems(table, manifest, "corrections.csv") if line in lines]
        if problems:
            raise DecisionError("; ".join(f"{p.message} ({p.fix})" for p in problems))
    write_csv_atomic(table[columns], labels / "corrections.csv", escape=False, follow_links=True)
    return replaced


def _write(table: pd.DataFrame, path: Path) -> None:
    write_csv_atomic(escape_formulas(table), path, follow_links=True)
