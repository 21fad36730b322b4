"""The label-files contract (corrections.csv, exclusions.csv): schema, known ids, allowed
values, no conflicting rows. The per-row problems come from the same rules maskops applies
when it reads the files, passed in as plain values."""

from __future__ import annotations

import pandas as pd

from expectations.contract import Validation

FIELDS = ["gender", "age", "mask"]


def validations(
    table: pd.DataFrame,
    columns: list[str],
    known_profiles: list[str],
    row_problems: dict[int, str],
) -> list[Validation]:
    """`table`: the file as strings with a `line` column; `row_problems`: line -> what is wrong with it."""
    import great_expectations as gx

    E = gx.expectations
    schema = Validation(
        "schema", table.reset_index(drop=True), [E.ExpectTableColumnsToMatchSet(column_set=[*columns, "line"], exact_match=True)]
    )
    if any(c not in table.columns for c in columns):
        return [schema]  # the row expectations need the columns
    frame = table.reset_index(drop=True).copy()
    frame["problem"] = frame["line"].map(row_problems).fillna("")
    rows = [
        E.ExpectColumnValuesToBeInSet(column="profile_id", value_set=sorted(known_profiles)),
        E.ExpectColumnValueLengthsToBeBetween(column="reason", min_value=1),
        E.ExpectColumnValuesToBeInSet(column="problem", value_set=[""]),
    ]
    if "field" in columns:
        frame["field_lower"] = frame["field"].str.lower()
        rows.append(E.ExpectColumnValuesToBeInSet(column="field_lower", value_set=FIELDS))
    return [schema, Validation("rows", frame, rows, ["line", "profile_id", "stem"])]
