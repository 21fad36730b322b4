"""The labels contract: every column in its domain and every row consistent with itself."""

from __future__ import annotations

import numpy as np
import pandas as pd

from expectations.contract import Validation

PROFILE_STEMS = ("incorrect_mask", "mask1", "mask2", "mask3", "mask4", "mask5", "normal")
CANONICAL_STEMS = ",".join(sorted(PROFILE_STEMS))
MIN_AGE, MAX_AGE = 0, 120
INTEGER_TYPES = ["int8", "int16", "int32", "int64", "Int8", "Int16", "Int32", "Int64"]


def _folder_matches(frame: pd.DataFrame) -> pd.Series:
    """Real profiles: the folder name's gender and age equal the (original) labels."""
    gender = frame["raw_gender"] if "raw_gender" in frame.columns else frame["gender"]
    age = frame["raw_age"] if "raw_age" in frame.columns else frame["age"]
    parts = frame["profile_id"].astype(str).str.split("_")
    folder_gender = parts.str[1].map({"male": 0, "female": 1})
    folder_age = pd.to_numeric(parts.str[3], errors="coerce")
    matches = (parts.str.len() == 4) & (folder_gender == gender) & (folder_age == age)
    generated = frame["generator"].fillna("").ne("") if "generator" in frame.columns else False
    return (matches | generated).astype(bool)


def prepare(manifest: pd.DataFrame) -> pd.DataFrame:
    """The manifest plus derived columns the expectations look at."""
    frame = manifest.reset_index(drop=True).copy()
    frame["class_id_from_parts"] = 6 * frame["mask"].astype(int) + 3 * frame["gender"].astype(int) + frame["age_group"].astype(int)
    frame["age_group_from_age"] = np.digitize(frame["age"].astype(int), (30, 60))
    by_profile = frame.groupby("profile_id")["stem"]
    frame["profile_images"] = by_profile.transform("size")
    frame["profile_stems"] = by_profile.transform(lambda s: ",".join(sorted(s)))
    frame["folder_matches_labels"] = _folder_matches(frame)
    return frame


def validations(manifest: pd.DataFrame, complete_profiles: bool = True) -> list[Validation]:
    """The labels contract. `complete_profiles`: every person has the 7 photos (raw and relabeled datasets); False for
    a cleaned dataset, where an exclusion or an unreadable or duplicate photo leaves a person fewer (each stem still
    at most once)."""
    import great_expectations as gx

    E = gx.expectations
    expectations = [
        E.ExpectTableRowCountToBeBetween(min_value=1),  # an empty dataset passes every per-row expectation
        E.ExpectColumnValuesToNotBeNull(column="image_id"),
        E.ExpectColumnValuesToBeUnique(column="image_id"),
        E.ExpectColumnValuesToNotBeNull(column="profile_id"),
        E.ExpectColumnValuesToBeInSet(column="mask", value_set=[0, 1, 2]),
        E.ExpectColumnValuesToBeInSet(column="gender", value_set=[0, 1]),
        E.ExpectColumnValuesToBeInSet(column="age_group", value_set=[0, 1, 2]),
        E.ExpectColumnValuesToBeBetween(column="class_id", min_value=0, max_value=17),
        E.ExpectColumnValuesToBeInTypeList(column="age", type_list=INTEGER_TYPES),
        E.ExpectColumnValuesToBeBetween(column="age", min_value=MIN_AGE, max_value=MAX_AGE),
        E.ExpectColumnPairValuesToBeEqual(column_A="class_id", column_B="class_id_from_parts"),
        E.ExpectColumnPairValuesToBeEqual(column_A="age_group", column_B="age_group_from_age"),
        E.ExpectColumnValuesToBeInSet(column="folder_matches_labels", value_set=[True]),
    ]
    if complete_profiles:
        expectations += [
            E.ExpectColumnValuesToBeInSet(column="profile_images", value_set=[7]),
            E.ExpectColumnValuesToBeInSet(column="profile_stems", value_set=[CANONICAL_STEMS]),
        ]
    else:
        expectations += [
            E.ExpectColumnValuesToBeInSet(column="stem", value_set=list(PROFILE_STEMS)),
            E.ExpectCompoundColumnsToBeUnique(column_list=["profile_id", "stem"]),
        ]
    return [Validation("labels", prepare(manifest), expectations, show=["image_id", "profile_id"])]
