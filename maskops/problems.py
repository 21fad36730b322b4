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
        super().__init__(self.report(MAX_LISTED_PROBLEMS))

    def report(self, limit: int | None = None) -> str:
        """The message with the first `limit` problems (all of them with None: what a command line prints)."""
        problems = self.problems if limit is None else self.problems[:limit]
        shown = "\n".join(f"  - {p}" for p in problems)
        more = len(self.problems) - len(problems)
        tail = f"\n  ... and {more} more (see .problems)" if more > 0 else ""
        noun = "problem" if len(self.problems) == 1 else "problems"
        return (
            f"{self.what} {self.source} has {len(self.problems)} {noun}; nothing was read from it and no file was changed:\n{shown}{tail}"
        )
