"""Profile-level stratified folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from maskops.labels import PROFILE_STEMS, STEM_MASK, age_group, encode
from maskops.splits import SplitError, assign_split, split_profiles
from maskops.synth.people import SynthConfig, plan


def _manifest(profiles: int = 400, seed: int = 0) -> pd.DataFrame:
    """A realistic manifest without drawing images: the synthesizer's people, 7 rows each."""
    train, *_ = plan(SynthConfig(profiles=profiles, seed=seed))
    rows = []
    for r in train.itertuples():
        gender = 0 if r.gender == "male" else 1
        grp = int(age_group(int(r.age)))
        for stem in PROFILE_STEMS:
            mask = int(STEM_MASK[stem])
            rows.append(
                {
                    "image_id": f"{r.path}/{stem}",
                    "profile_id": r.path,
                    "gender": gender,
                    "age_group": grp,
                    "class_id": encode(mask, gender, grp),
                }
            )
    return pd.DataFrame(rows)


def test_no_profile_in_two_folds_and_shares_match():
    manifest = _manifest()
    split = split_profiles(manifest, n_folds=5, validation_fold=2, seed=1)
    assert split["profile_id"].is_unique and set(split["profile_id"]) == set(manifest["profile_id"])
    assert set(split["fold"]) == set(range(5))
    assert (split["role"] == "validation").sum() == (split["fold"] == 2).sum()
    joined = manifest.merge(split, on="profile_id")
    assert joined.groupby("profile_id")["fold"].nunique().max() == 1
    overall = joined["class_id"].value_counts(normalize=True)
    for _, fold in joined.groupby("fold"):
        share = fold["class_id"].value_counts(normalize=True).reindex(overall.index, fill_value=0)
        assert np.abs(share - overall).max() < 0.03  # within 3 points per class


def test_split_is_seeded():
    manifest = _manifest(100)
    a, b = split_profiles(manifest, seed=7), split_profiles(manifest, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert not split_profiles(manifest, seed=8)["fold"].equals(a["fold"])


def test_generated_rows_inherit_and_never_validate():
    manifest = _manifest(50)
    split = split_profiles(manifest, n_folds=5)
    train_profile = split.loc[split["role"] == "train", "profile_id"].iloc[0]
    val_profile = split.loc[split["role"] == "validation", "profile_id"].iloc[0]
    gen = pd.DataFrame({"image_id": ["gen1/mask1"], "profile_id": ["gen1"], "source_profile_id": [train_profile], "generator": ["masks"]})
    real = manifest.assign(source_profile_id=manifest["profile_id"], generator="")
    out = assign_split(pd.concat([real, gen], ignore_index=True), split)
    assert out.iloc[-1]["role"] == "train" and out.iloc[-1]["fold"] == split.set_index("profile_id").loc[train_profile, "fold"]
    leak = gen.assign(source_profile_id=val_profile)
    with pytest.raises(SplitError, match="derive from validation profiles"):
        assign_split(pd.concat([real, leak], ignore_index=True), split)


@pytest.mark.parametrize(("kwargs", "message"), [({"n_folds": 1}, "at least 2"), ({"validation_fold": 5}, "0..4")])
def test_bad_split_settings(kwargs, message):
    with pytest.raises(SplitError, match=message):
        split_profiles(_manifest(20), **kwargs)


def test_extending_keeps_people_in_their_folds():
    from maskops.splits import extend_split

    everyone = _manifest(420, seed=3)
    first_ids = sorted(everyone["profile_id"].unique())[:400]
    first = everyone[everyone["profile_id"].isin(first_ids)]
    before = split_profiles(first, n_folds=5, seed=1)
    after = extend_split(before, everyone, n_folds=5, validation_fold=0, seed=1)
    merged = before.merge(after, on="profile_id", suffixes=("_before", "_after"))
    assert len(merged) == 400 and (merged["fold_before"] == merged["fold_after"]).all()
    assert len(after) == everyone["profile_id"].nunique() and after["profile_id"].is_unique
    counts = after["fold"].value_counts()
    assert counts.max() - counts.min() <= 3  # new people went where folds were thin
    gone = extend_split(before, first[first["profile_id"] != first_ids[0]], n_folds=5, validation_fold=0)
    assert first_ids[0] not in set(gone["profile_id"])
