"""The splits contract: people in exactly one fold, folds alike, generated people only in training."""

from __future__ import annotations

import pandas as pd

from expectations.contract import Validation

ROLES = ["train", "validation"]


def fold_share_deviation(split: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """Per fold and class: |share of the class in the fold - share in the whole|, plus the fold's size."""
    joined = manifest[["profile_id", "class_id"]].merge(split[["profile_id", "fold"]], on="profile_id")
    overall = joined["class_id"].value_counts(normalize=True)
    shares = (
        joined.groupby("fold")["class_id"]
        .value_counts(normalize=True)
        .unstack(fill_value=0.0)
        .reindex(columns=overall.index, fill_value=0.0)
    )
    deviation = (shares - overall).abs().stack().rename("deviation").reset_index()
    people = split.groupby("fold")["profile_id"].nunique().rename("fold_profiles").reset_index()
    return deviation.merge(people, on="fold")


def validations(split: pd.DataFrame, raw: pd.DataFrame, relabeled: pd.DataFrame, tolerance: float = 0.05) -> list[Validation]:
    """`tolerance`: allowed share deviation per class and fold; never below 1/(people in the smallest fold),
    the granularity a fold of that size can reach."""
    import great_expectations as gx

    E = gx.expectations
    folds = int(split["fold"].max()) + 1 if len(split) else 1
    coverage = pd.DataFrame({"profile_id": sorted(raw["profile_id"].unique())})
    coverage["folds"] = coverage["profile_id"].map(split.groupby("profile_id")["fold"].nunique()).fillna(0).astype(int)
    deviation = fold_share_deviation(split, relabeled)
    smallest = int(deviation["fold_profiles"].min()) if len(deviation) else 1
    allowed = max(tolerance, 1.0 / max(smallest, 1))
    return [
        Validation("folds", split.reset_index(drop=True), [
            E.ExpectColumnValuesToBeUnique(column="profile_id"),
            E.ExpectColumnValuesToBeInSet(column="role", value_set=ROLES),
            E.ExpectColumnDistinctValuesToContainSet(column="role", value_set=ROLES),
            E.ExpectColumnValuesToBeBetween(column="fold", min_value=0, max_value=folds - 1),
        ], ["profile_id", "fold"]),
        # every person of every variant has exactly one fold: validation is the same people everywhere
        Validation("coverage", coverage, [E.ExpectColumnValuesToBeInSet(column="folds", value_set=[1])], ["profile_id"]),
        Validation("fold_shares", deviation, [E.ExpectColumnValuesToBeBetween(column="deviation", max_value=allowed)], ["fold", "class_id", "fold_profiles"]),
    ]  # fmt: skip


def generated_validations(generated: pd.DataFrame, split: pd.DataFrame) -> list[Validation]:
    """Generated rows derive from training profiles only and are new people (not in the split)."""
    import great_expectations as gx

    E = gx.expectations
    rows = generated[generated["generator"].fillna("").ne("")] if "generator" in generated.columns else generated.iloc[:0]
    role = split.set_index("profile_id")["role"]
    frame = pd.DataFrame({
        "image_id": rows["image_id"].to_numpy(),
        "source_profile_id": rows["source_profile_id"].to_numpy(),
        "source_role": rows["source_profile_id"].map(role).fillna("missing").to_numpy(),
        "is_known_person": rows["profile_id"].isin(role.index).to_numpy(),
    })  # fmt: skip
    return [
        Validation("generated_sources", frame, [
            E.ExpectColumnValuesToBeInSet(column="source_role", value_set=["train"]),
            E.ExpectColumnValuesToBeInSet(column="is_known_person", value_set=[False]),
        ], ["image_id", "source_profile_id"]),
    ]  # fmt: skip
