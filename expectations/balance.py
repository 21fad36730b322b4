"""The class-balance contract: how far a dataset is from the distribution a model should see.

Raw data is expected to be imbalanced (a warning where a person should look); where
balancing is the point (the generated dataset) the bounds are strict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from expectations.contract import ContractResult, Outcome, Validation

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


def _by_column(result: ContractResult) -> dict[str, Outcome]:
    return {o.column: o for o in result.outcomes if o.column}


def describe(result: ContractResult) -> str:
    """The balance verdict in one line, passed or not: `KL 0.22 > 0.15; rarest age group >=60 at 6% < 10%; ...`."""
    found, parts = _by_column(result), []
    if (kl := found.get("class_id")) is not None and isinstance(kl.observed, int | float):
        parts.append(f"KL {kl.observed:.2f} {'<=' if kl.success else '>'} {kl.expected['threshold']:g}")
    if (rare := found.get("rarest_age_group_share")) is not None and isinstance(rare.observed, int | float):
        group = rare.row.get("rarest_age_group", "?")
        parts.append(f"rarest age group {group} at {rare.observed:.0%} {'>=' if rare.success else '<'} {rare.expected['min_value']:.0%}")
    if (ratio := found.get("max_min_class_ratio")) is not None and isinstance(ratio.observed, int | float):
        parts.append(f"largest/smallest class {ratio.observed:.1f}x {'<=' if ratio.success else '>'} {ratio.expected['max_value']:g}x")
    if (shares := found.get("share")) is not None:
        bounds = f"[{shares.expected['min_value']:.1%}, {shares.expected['max_value']:.0%}]"
        if shares.success:
            parts.append(f"every class share in {bounds}")
        else:
            worst = ", ".join(f"{r['class_id']} at {r['share']:.1%}" for r in shares.offending_rows[:2])
            parts.append(f"{shares.unexpected_count} class shares outside {bounds} ({worst})")
    failed = [o for o in result.failed if o.column not in ("class_id", "rarest_age_group_share", "max_min_class_ratio", "share")]
    return "; ".join(parts + [f"{o.column}: {o.error or 'failed'}" for o in failed])
