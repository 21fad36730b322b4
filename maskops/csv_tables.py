"""Human-written CSV files (the competition's train.csv and info.csv, labels/corrections.csv, exclusions.csv,
reviewed.csv), read the way people and spreadsheets write them, each row with the line it starts on."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd

from maskops.problems import Problem

CSV_FIX = "save it as UTF-8 CSV with a header row"


def read_csv_table(path: Path, shown: str) -> tuple[pd.DataFrame | None, list[Problem]]:
    """(table, problems): every cell a stripped string, plus `line`, the physical line each row starts on (what a text
    editor shows); None for a file with no header. A BOM, CRLF endings, blank lines, spaces after commas and quoted
    cells over several lines are fine, and so are empty cells past the header's last column (a spreadsheet's trailing
    commas); a value past the header, text that is not UTF-8 or a broken quote is a problem at `shown` (the name to
    print) and its line, and the table is None."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, [Problem(shown, f"is not UTF-8 text ({exc.reason} at byte {exc.start})", CSV_FIX)]
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    header: list[str] | None = None
    rows, lines, problems = [], [], []
    start = 1  # the line the next record starts on (reader.line_num: the last line read)
    try:
        for record in reader:
            line, start = start, reader.line_num + 1
            cells = [cell.strip() for cell in record]
            if not any(cells):  # a blank line, or one of commas only
                continue
            if header is None:
                while cells and not cells[-1]:  # the header's trailing commas
                    cells.pop()
                header = cells
                continue
            extra = [c for c in cells[len(header) :] if c]
            if extra:
                problems.append(Problem(f"{shown} line {line}", f"{len(cells)} values for the header's {len(header)} columns "
                                        f"(extra: {', '.join(map(repr, extra))})", "quote a value that holds a comma, or delete the extra value"))  # fmt: skip
                continue
            rows.append(cells[: len(header)] + [""] * (len(header) - len(cells)))
            lines.append(line)
    except csv.Error as exc:
        return None, [
            Problem(f"{shown} line {reader.line_num}", f"cannot be parsed as CSV ({exc})", f"{CSV_FIX}; close every quoted value")
        ]
    if problems or header is None:
        return None, problems
    return pd.DataFrame(rows, columns=header, dtype=object).assign(line=pd.Series(lines, dtype="int64")), []
