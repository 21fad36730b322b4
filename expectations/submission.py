"""The submission contract: one answer per evaluation image, in info.csv's order, a class id 0..17."""

from __future__ import annotations

import pandas as pd

from expectations.contract import Validation


def validations(submission: pd.DataFrame, info_ids: list[str]) -> list[Validation]:
    import great_expectations as gx

    E = gx.expectations
    frame = submission.reset_index(drop=True).copy()
    expected = pd.Series(info_ids[: len(frame)] + [None] * max(0, len(frame) - len(info_ids)), dtype="object")
    frame["expected_image_id"] = expected.to_numpy()
    frame["in_info_order"] = frame["ImageID"].astype(str).to_numpy() == frame["expected_image_id"].astype(str).to_numpy()
    return [
        Validation("answers", frame, [
            E.ExpectTableColumnsToMatchOrderedList(column_list=["ImageID", "ans", "expected_image_id", "in_info_order"]),
            E.ExpectTableRowCountToEqual(value=len(info_ids)),
            E.ExpectColumnValuesToBeUnique(column="ImageID"),
            E.ExpectColumnValuesToNotBeNull(column="ans"),
            E.ExpectColumnValuesToBeInTypeList(column="ans", type_list=["int8", "int16", "int32", "int64", "Int64"]),
            E.ExpectColumnValuesToBeBetween(column="ans", min_value=0, max_value=17),
            E.ExpectColumnValuesToBeInSet(column="in_info_order", value_set=[True]),
        ], ["ImageID", "expected_image_id"]),
    ]  # fmt: skip
