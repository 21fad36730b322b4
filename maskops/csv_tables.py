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
    except OSError as exc:  # a folder of that name, no permission to read it
        return None, [Problem(shown, f"cannot be read ({exc.strerror or exc})", "make it a CSV file that maskops' user can read")]
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
    opened = _unclosed_quote(text)  # csv's reader (not strict) reads an unclosed quote to the end of the file as one cell
    if opened is not None:
        return None, [Problem(f"{shown} line {opened}", "a quoted value opened here is never closed: every line after it would be read as "
                              "part of it", 'close the quote (a quote inside a quoted value is written "")')]  # fmt: skip
    if header is not None:
        names = [c for c in header if c]
        repeated = sorted({c for c in names if names.count(c) > 1})
        if repeated or len(names) < len(header):
            what = f"column names repeated: {', '.join(repeated)}" if repeated else "a column with no name in the header"
            problems.insert(0, Problem(f"{shown} line 1", what, "give every column of the header its own name"))
    if problems or header is None:
        return None, problems
    return pd.DataFrame(rows, columns=header, dtype=object).assign(line=pd.Series(lines, dtype="int64")), []


def _unclosed_quote(text: str) -> int | None:
    """The line of a quoted value that is never closed, as csv's reader quotes (a quote opens a value only at its
    start, after spaces; "" inside is one quote); None when every quoted value is closed."""
    line, start, quoted, opened, i = 1, True, False, 0, 0
    while i < len(text):
        c = text[i]
        if quoted:
            if c == '"':
                if text[i + 1 : i + 2] == '"':
                    i += 1
                else:
                    quoted, start = False, False
            elif c == "\n":
                line += 1
        elif c == '"' and start:
            quoted, opened = True, line
        elif c in ",\r\n":
            start = True
            line += c == "\n"
        elif c != " ":
            start = False
        i += 1
    return opened if quoted else None
