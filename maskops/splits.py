"""Profile-level folds: people, never images, are split; one fold validates every variant."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import pandas as pd

from maskops.options import option

TRAIN, VALIDATION = "train", "validation"


class SplitError(ValueError):
    """A split cannot be made or applied as asked."""


@dataclass(frozen=True)
class SplitConfig:
    n_folds: int = option(5, "Folds of profiles (people).")
    validation_fold: int = option(0, "The fold that validates every variant.")
    seed: int = option(0, "Seed of the stratified fold assignment.")
    sticky: bool = option(
        True, "Keep known profiles in their folds and only place new ones (a fresh split when false or when n_folds/seed change)."
    )


def split_profiles(manifest: pd.DataFrame, n_folds: int = 5, validation_fold: int = 0, seed: int = 0) -> pd.DataFrame:
    """Assign every profile to one of `n_folds` folds, stratified on the 18 classes of its images.

    Each person's images share gender and age group and carry masks 5:1:1, so this balances
    gender x age group across folds (and mask wherever the mix differs). Returns one row per
    profile: profile_id, fold, role ('train' or 'validation').
    """
    if n_folds < 2:
        raise SplitError(f"n_folds must be at least 2, got {n_folds}")
    if not 0 <= validation_fold < n_folds:
        raise SplitError(f"validation_fold must be in 0..{n_folds - 1}, got {validation_fold}")
    profiles = manifest["profile_id"].nunique()
    if profiles < n_folds:
        raise SplitError(f"{profiles} profiles cannot fill {n_folds} folds; use fewer folds or more data")
    from sklearn.model_selection import StratifiedGroupKFold  # imported here: sklearn costs a second at import

    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    data = manifest.sort_values("image_id").reset_index(drop=True)
    fold = pd.Series(-1, index=data.index)
    with warnings.catch_warnings():  # rare classes with fewer members than folds are expected
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for k, (_, held_out) in enumerate(splitter.split(data, data["class_id"], groups=data["profile_id"])):
            fold.iloc[held_out] = k
    table = pd.DataFrame({"profile_id": data["profile_id"], "fold": fold}).drop_duplicates("profile_id")
    table["role"] = (table["fold"] == validation_fold).map({True: VALIDATION, False: TRAIN})
    return table.sort_values("profile_id").reset_index(drop=True).astype({"profile_id": "string", "fold": "int8", "role": "string"})


def assign_split(manifest: pd.DataFrame, split: pd.DataFrame) -> pd.DataFrame:
    """Add fold and role to a variant's manifest. Generated rows take their source's fold and are
    always training rows; a generated row from a validation profile is an error (it would leak)."""
    source = manifest["source_profile_id"] if "source_profile_id" in manifest.columns else manifest["profile_id"]
    by_profile = split.set_index("profile_id")
    missing = sorted(set(source) - set(by_profile.index))
    if missing:
        raise SplitError(f"{len(missing)} profile(s) are not in the split, e.g. {missing[:3]}; re-materialize profile_split")
    out = manifest.assign(fold=by_profile["fold"].reindex(source).to_numpy(), role=by_profile["role"].reindex(source).to_numpy())
    generated = manifest["generator"].fillna("").ne("") if "generator" in manifest.columns else pd.Series(False, index=manifest.index)
    leaked = generated & (out["role"] == VALIDATION)
    if leaked.any():
        raise SplitError(
            f"{int(leaked.sum())} generated image(s) derive from validation profiles, e.g. {list(manifest.loc[leaked, 'image_id'][:3])}"
        )
    return out


def extend_split(previous: pd.DataFrame, manifest: pd.DataFrame, n_folds: int, validation_fold: int, seed: int = 0) -> pd.DataFrame:
    """Keep every known profile in its fold and add new ones where their stratum is thinnest.

    People never move between folds as data arrives, so validation stays comparable across
    runs (and the work derived from training profiles stays valid). New profiles go, in a
    seeded order, to the fold holding the fewest profiles of their gender x age group.
    """
    import hashlib

    people = manifest.drop_duplicates("profile_id").set_index("profile_id")
    stratum = people["gender"].astype(int) * 3 + people["age_group"].astype(int)
    kept = previous[previous["profile_id"].isin(people.index)][["profile_id", "fold"]]
    if len(kept) and (kept["fold"].max() >= n_folds or kept["fold"].min() < 0):
        raise SplitError(f"the previous split has folds outside 0..{n_folds - 1}; make a fresh split")
    per_stratum = {s: [0] * n_folds for s in range(6)}
    totals = [0] * n_folds
    for profile, fold in zip(kept["profile_id"], kept["fold"], strict=True):
        per_stratum[int(stratum[profile])][int(fold)] += 1
        totals[int(fold)] += 1
    new = sorted(set(people.index) - set(kept["profile_id"]), key=lambda p: hashlib.sha256(f"{seed}/{p}".encode()).hexdigest())
    rows = []
    for profile in new:
        counts = per_stratum[int(stratum[profile])]
        fold = min(range(n_folds), key=lambda f: (counts[f], totals[f], f))
        counts[fold] += 1
        totals[fold] += 1
        rows.append({"profile_id": profile, "fold": fold})
    table = pd.concat([kept, pd.DataFrame(rows, columns=["profile_id", "fold"])], ignore_index=True)
    table["role"] = (table["fold"] == validation_fold).map({True: VALIDATION, False: TRAIN})
    return table.sort_values("profile_id").reset_index(drop=True).astype({"profile_id": "string", "fold": "int8", "role": "string"})


def make_split(manifest: pd.DataFrame, config: SplitConfig, previous: pd.DataFrame | None = None) -> tuple[pd.DataFrame, int]:
    """A fresh split, or `previous` extended to new people (sticky); returns it and how many people kept their fold."""
    if previous is None:
        return split_profiles(manifest, config.n_folds, config.validation_fold, config.seed), 0
    split = extend_split(previous, manifest, config.n_folds, config.validation_fold, config.seed)
    return split, int(split["profile_id"].isin(previous["profile_id"]).sum())


def class_share_deviation(manifest: pd.DataFrame, split: pd.DataFrame) -> float:
    """The largest difference, over folds and classes, between a class's share in a fold and in the whole."""
    joined = manifest.merge(split, on="profile_id")
    overall = joined["class_id"].value_counts(normalize=True)
    shares = (
        joined.groupby("fold")["class_id"].value_counts(normalize=True).unstack(fill_value=0).reindex(columns=overall.index, fill_value=0)
    )
    return float((shares - overall).abs().to_numpy().max())
