"""Problems found in user input, reported all at once with the file, the place and the fix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MAX_LISTED_PROBLEMS = 40


@dataclass(frozen=True)
class Problem:
    """One thing wrong: where, what, and how to fix it."""

    path: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}\n      fix: {self.fix}"


class ProblemReport(ValueError):
    """Every problem found in one input, as one exception; nothing was read from it or changed."""

    what = "input"

    def __init__(self, source: Path | str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        shown = "\n".join(f"  - {p}" for p in problems[:MAX_LISTED_PROBLEMS])
        more = len(problems) - MAX_LISTED_PROBLEMS
        tail = f"\n  ... and {more} more (see .problems)" if more > 0 else ""
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(
            f"{self.what} {source} has {len(problems)} {noun}; nothing was read from it and no file was changed:\n{shown}{tail}"
        )
