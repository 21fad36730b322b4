"""The submission contract: one answer per evaluation image, in info.csv's order, a class id 0..17, and (given the
evaluation crops) at most MAX_WITHOUT_CROP of the answers guessed for images that had no readable crop."""

from __future__ import annotations

import pandas as pd

from expectations.contract import Validation

MAX_WITHOUT_CROP = 0.05


def validations(submission: pd.DataFrame, info_ids: list[str], cropped_ids: set[str] | None = None,
                max_without_crop: float = MAX_WITHOUT_CROP) -> list[Validation]:  # fmt: skip
    """`cropped_ids`: the evaluation images that had a crop (the rest got a fallback answer, not a prediction)."""
    import great_expectations as gx

    E = gx.expectations
    frame = submission.reset_index(drop=True).copy()
    frame["has_crop"] = frame["ImageID"].astype(str).isin(cropped_ids) if cropped_ids is not None else True
    expected = pd.Series(info_ids[: len(frame)] + [None] * max(0, len(frame) - len(info_ids)), dtype="object")
    frame["expected_image_id"] = expected.to_numpy()
    frame["in_info_order"] = frame["ImageID"].astype(str).to_numpy() == frame["expected_image_id"].astype(str).to_numpy()
    return [
        Validation("answers", frame, [
            E.ExpectTableColumnsToMatchOrderedList(column_list=["ImageID", "ans", "has_crop", "expected_image_id", "in_info_order"]),
            E.ExpectTableRowCountToEqual(value=len(info_ids)),
            E.ExpectColumnValuesToBeUnique(column="ImageID"),
            E.ExpectColumnValuesToNotBeNull(column="ans"),
            E.ExpectColumnValuesToBeInTypeList(column="ans", type_list=["int8", "int16", "int32", "int64", "Int64"]),
            E.ExpectColumnValuesToBeBetween(column="ans", min_value=0, max_value=17),
            E.ExpectColumnValuesToBeInSet(column="in_info_order", value_set=[True]),
            E.ExpectColumnValuesToBeInSet(column="has_crop", value_set=[True], mostly=1 - max_without_crop),
        ], ["ImageID", "expected_image_id"]),
    ]  # fmt: skip
