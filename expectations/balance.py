"""The class-balance contract: how far a dataset is from the distribution a model should see.

Raw data is expected to be imbalanced (a warning where a person should look); where
balancing is the point (the generated dataset) the bounds are strict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from expectations.contract import Validation

NUM_CLASSES = 18


@dataclass(frozen=True)
class BalanceBounds:
    min_share: float  # every class at least this share of the images
    max_share: float  # and at most this
    max_ratio: float  # largest class / smallest class
    max_kl: float  # KL divergence of the class distribution from the target
    min_rarest_age_group_share: float  # images of the rarest age group / all images
    age_balanced_target: bool  # target: age groups equal (else: the dataset's own age mix)

    @classmethod
    def observe(cls) -> BalanceBounds:
        """Bounds for data as it arrives (a warning): real data, with its rare >=60 group, trips them."""
        return cls(min_share=0.002, max_share=0.35, max_ratio=100.0, max_kl=0.15, min_rarest_age_group_share=0.10, age_balanced_target=True)

    @classmethod
    def balanced(cls) -> BalanceBounds:
        """Strict bounds for a dataset built to balance the age groups (an error)."""
        return cls(min_share=0.005, max_share=0.3, max_ratio=30.0, max_kl=0.05, min_rarest_age_group_share=0.25, age_balanced_target=True)


def target_distribution(manifest: pd.DataFrame, age_balanced: bool) -> list[float]:
    """Masks 5:1:1 (by construction of a profile), the dataset's gender mix, age groups equal or as observed."""
    mask = np.array([5, 1, 1]) / 7
    gender = manifest["gender"].value_counts(normalize=True).reindex([0, 1], fill_value=0.5).to_numpy()
    age = (
        np.full(3, 1 / 3)
        if age_balanced
        else manifest["age_group"].value_counts(normalize=True).reindex([0, 1, 2], fill_value=0).to_numpy()
    )
    weights = np.einsum("m,g,a->mga", mask, gender, age).reshape(-1)
    weights = np.clip(weights, 1e-6, None)
    return list(weights / weights.sum())


def validations(manifest: pd.DataFrame, bounds: BalanceBounds) -> list[Validation]:
    import great_expectations as gx

    E = gx.expectations
    counts = manifest["class_id"].astype(int).value_counts().reindex(range(NUM_CLASSES), fill_value=0)
    per_class = pd.DataFrame({"class_id": counts.index, "images": counts.to_numpy(), "share": counts.to_numpy() / max(counts.sum(), 1)})
    ages = manifest["age_group"].astype(int).value_counts().reindex([0, 1, 2], fill_value=0)
    summary = pd.DataFrame({
        "max_min_class_ratio": [counts.max() / max(counts.min(), 1)],
        "rarest_age_group_share": [ages.min() / max(ages.sum(), 1)],
        "rarest_age_group": [int(ages.idxmin())],
    })  # fmt: skip
    target = target_distribution(manifest, bounds.age_balanced_target)
    return [
        Validation("class_shares", per_class, [E.ExpectColumnValuesToBeBetween(column="share", min_value=bounds.min_share, max_value=bounds.max_share)], ["class_id", "images"]),
        Validation("summary", summary, [
            E.ExpectColumnValuesToBeBetween(column="max_min_class_ratio", max_value=bounds.max_ratio),
            E.ExpectColumnValuesToBeBetween(column="rarest_age_group_share", min_value=bounds.min_rarest_age_group_share),
        ], ["rarest_age_group"]),
        Validation("class_distribution", manifest[["class_id"]].astype(int).reset_index(drop=True), [
            E.ExpectColumnKLDivergenceToBeLessThan(column="class_id", partition_object={"values": list(range(NUM_CLASSES)), "weights": target}, threshold=bounds.max_kl),
        ]),
    ]  # fmt: skip
