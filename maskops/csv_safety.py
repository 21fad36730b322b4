"""Spreadsheet-formula escaping for CSV files that people open in Excel or LibreOffice (OWASP, "CSV Injection").

A cell that starts with = + - @ a tab or a carriage return is read by a spreadsheet as a formula
(`=cmd|' /C calc'!A0` runs a program); a leading apostrophe makes it text again. Apply it to
frames just before they are written: numbers (numeric columns) are left alone, so -1.5 stays a number.
"""

from __future__ import annotations

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_formula(cell: object) -> object:
    """`cell` with a leading apostrophe if it is text that a spreadsheet would run as a formula; else unchanged."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` with every text cell (and column name) passed through `escape_formula`."""
    out = frame.copy()
    for column in out.columns:
        if not pd.api.types.is_numeric_dtype(out[column]) and not pd.api.types.is_bool_dtype(out[column]):
            out[column] = out[column].map(escape_formula, na_action="ignore")
    out.columns = [escape_formula(c) for c in out.columns]
    return out
