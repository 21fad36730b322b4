"""Suspected label errors: confident learning on hand-made probabilities, out-of-fold training,
and the label_issues asset on the tiny dataset."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import torch

from maskops.label_issues import (
    ISSUE_COLUMNS,
    LabelIssuesConfig,
    field_probabilities,
    find_label_issues,
    frozen_features,
    judge_age,
    out_of_fold,
    probe_out_of_fold,
    rank_labels,
    score_against_truth,
)
from maskops.labels import PROFILE_STEMS, age_group_array
from maskops.train import config_from

STEM_MASK = {stem: 0 if stem.startswith("mask") else 1 if stem == "incorrect_mask" else 2 for stem in PROFILE_STEMS}


def _people(genders: list[int], ages: list[int]) -> pd.DataFrame:
    rows = [
        {"profile_id": f"p{i}", "stem": stem, "mask": STEM_MASK[stem], "gender": g, "age_group": a}
        for i, (g, a) in enumerate(zip(genders, ages, strict=True))
        for stem in PROFILE_STEMS
    ]
    frame = pd.DataFrame(rows)
    return frame.assign(class_id=6 * frame["mask"] + 3 * frame["gender"] + frame["age_group"])


def _confident(frame: pd.DataFrame, sure: float = 0.8) -> np.ndarray:
    """Probabilities that agree with the labels: `sure` on the labelled class, the rest spread evenly."""
    probs = np.full((len(frame), 18), (1 - sure) / 17)
    probs[np.arange(len(frame)), frame["class_id"]] = sure
    return probs


def test_field_probabilities_are_the_marginals():
    probs = np.zeros((1, 18))
    probs[0, 6 * 1 + 3 * 1 + 2] = 0.7  # incorrect, female, old
    probs[0, 6 * 0 + 3 * 0 + 0] = 0.3  # wear, male, young
    fields = field_probabilities(probs)
    assert fields["mask"].tolist() == [[0.3, 0.7, 0.0]] and fields["gender"].tolist() == [[0.3, 0.7]]
    assert fields["age_group"].tolist() == [[0.3, 0.0, 0.7]]


def test_a_wrong_gender_and_a_swapped_mask_are_found_and_nothing_else():
    frame, probs = _noisy_people()
    issues = find_label_issues(frame, probs)
    assert list(issues.columns) == list(ISSUE_COLUMNS)
    found = {(r.profile_id, r.stem, r.field, r.given, r.suggested) for r in issues.itertuples()}
    assert found == {
        ("p2", "", "gender", "male", "female"),
        ("p4", "incorrect_mask", "mask", "incorrect", "not_wear"),
        ("p4", "normal", "mask", "not_wear", "incorrect"),
    }
    assert issues["score"].is_monotonic_decreasing and (issues["p_suggested"] > issues["p_given"]).all()
    assert issues.set_index("field").loc["gender", "images"] == 7


def _noisy_people() -> tuple[pd.DataFrame, np.ndarray]:
    """p2's gender is wrong and p4's incorrect_mask/normal photos are swapped; the probabilities see both."""
    frame = _people(genders=[0, 1, 0, 1, 0, 1], ages=[0, 1, 2, 0, 1, 2])
    probs = _confident(frame)
    wrong = frame.index[frame["profile_id"] == "p2"]
    probs[wrong] = _confident(frame.loc[wrong].assign(class_id=frame.loc[wrong, "class_id"] + 3))
    swapped = frame.index[(frame["profile_id"] == "p4") & frame["stem"].isin(["incorrect_mask", "normal"])]
    probs[swapped] = probs[swapped[::-1]]
    return frame, probs


def test_every_label_is_ranked_and_scored_against_the_known_errors():
    frame, probs = _noisy_people()
    ranked = rank_labels(frame, probs)
    assert len(ranked) == len(frame) + 2 * 6 and ranked["score"].is_monotonic_decreasing  # every photo's mask, every person twice
    assert ranked["flagged"].sum() == 3 and ranked["flagged"].head(3).all()
    # the truth also knows an age error the model cannot see (p5 looks as labelled)
    wrong = {"gender": {"p2"}, "age_group": {"p5"}, "mask": {("p4", "incorrect_mask"), ("p4", "normal")}}
    report = score_against_truth(ranked, wrong)
    assert report["gender"] == {
        "items": 6,
        "wrong": 1,
        "flagged": 1,
        "flagged_wrong": 1,
        "precision": 1.0,
        "recall": 1.0,
        "recall_top_2k": 1.0,
    }
    assert report["mask"]["recall_top_2k"] == 1.0 and report["mask"]["precision"] == 1.0
    assert report["age_group"]["recall"] == 0.0 and report["age_group"]["precision"] is None  # nothing flagged there
    assert report["person"]["wrong"] == 2 and report["person"]["recall"] == 0.5 and report["person"]["recall_top_2k"] == 0.5
    clean = score_against_truth(ranked, {"gender": set(), "age_group": set(), "mask": set()})
    assert clean["person"]["recall"] is None and clean["person"]["precision"] == 0.0


def test_the_errors_left_in_labels_come_from_the_synthetic_ground_truth(tmp_path: Path):
    from maskops.synth.truth import remaining_errors

    frame = _people(genders=[0, 1, 0], ages=[0, 1, 2])
    assert remaining_errors(tmp_path, frame) is None  # a real dataset keeps no answers
    truth = tmp_path / "ground_truth"
    truth.mkdir()
    pd.DataFrame({"profile_id": ["p0", "p1", "p2"], "true_gender": ["male", "male", "male"], "true_age": [20, 40, 45],
                  "noise": ["", "gender", "age"]}).to_csv(truth / "people.csv", index=False)  # fmt: skip
    pd.DataFrame([["p0", "p0/incorrect_mask", "mask", "incorrect", "not_wear"], ["p0", "p0/normal", "mask", "not_wear", "incorrect"]],
                 columns=["profile_id", "image_id", "field", "recorded", "true"]).to_csv(truth / "label_noise.csv", index=False)  # fmt: skip
    wrong = remaining_errors(tmp_path, frame)
    assert wrong == {"gender": {"p1"}, "age_group": {"p2"}, "mask": {("p0", "incorrect_mask"), ("p0", "normal")}}
    fixed = frame.copy()
    fixed.loc[(fixed["profile_id"] == "p0") & (fixed["stem"] == "normal"), "mask"] = 1  # a reviewer corrected one of the two
    assert remaining_errors(tmp_path, fixed)["mask"] == {("p0", "incorrect_mask")}
    with pytest.raises(ValueError, match="does not know 1 of the labelled people"):
        remaining_errors(tmp_path, pd.concat([frame, frame.head(1).assign(profile_id="stranger")]))


def test_a_uniformly_unsure_model_flags_nothing():
    frame = _people(genders=[0, 1, 0, 1], ages=[0, 1, 2, 0])
    assert find_label_issues(frame, np.full((len(frame), 18), 1 / 18)).empty
    with pytest.raises(ValueError, match="28 images but 3 rows"):
        find_label_issues(frame, np.zeros((3, 18)))


def test_an_age_far_from_the_face_across_a_group_boundary_is_the_suspect():
    rng = np.random.default_rng(0)
    true = rng.integers(18, 80, 200).astype(float)
    shown = true + rng.normal(0, 3, 200)  # what the photos show: the true age, give or take 3 years
    recorded = true.copy()
    recorded[:3] = [70, 45, 61]  # 56 recorded as 70 (crosses 60), 35 as 45 (stays 30-59), an honest 61 that looks 57
    true[:3], shown[:3] = [56, 35, 61], [56, 35, 57]
    verdict = judge_age(recorded, shown)
    assert verdict["flagged"].tolist()[:3] == [True, False, False] and verdict["flagged"].sum() == 1
    assert verdict.loc[0, ["given", "suggested"]].tolist() == [2, 1]  # >=60 given, 30-59 suggested
    assert verdict["score"].idxmax() == 0 and verdict.loc[0, "p_suggested"] > 0.75
    assert (verdict["p_given"] + verdict["score"] <= 1 + 1e-9).all() and verdict["p_given"].between(0, 1).all()
    frame = _people(genders=[0] * 200, ages=age_group_array(recorded.astype(int)).tolist()).assign(age=np.repeat(recorded, 7))
    ranked = rank_labels(frame, _confident(frame), age=np.repeat(shown, 7))  # the same people, seven photos each
    assert ranked.iloc[0][["profile_id", "field", "given", "suggested", "flagged"]].tolist() == ["p0", "age_group", "old", "middle", True]
    with pytest.raises(ValueError, match="'age' column and one predicted age per image"):
        rank_labels(_people(genders=[0], ages=[0]), np.full((7, 18), 1 / 18), age=np.zeros(3))


def test_out_of_fold_predictions_cover_every_image_once():
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (36, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = np.arange(36) % 18
    folds = np.repeat([0, 1, 2], 12)
    people, ages = np.repeat([f"p{i}" for i in range(12)], 3), np.repeat(np.arange(20, 80, 5), 3)
    cfg = config_from("scratch", image_size=32, epochs=1, batch_size=12, patience=1, device="cpu")
    seen: list[int] = []
    first = out_of_fold(images, labels, folds, cfg, on_fold=lambda fold, metrics: seen.append(fold), ages=ages, people=people)
    probs = first.probabilities
    assert seen == [0, 1, 2] and probs.shape == (36, 18) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert first.age.shape == (36,) and np.isfinite(first.age).all()
    assert (pd.Series(first.age).groupby(people).nunique() == 1).all()  # one age per person, on every photo
    again = out_of_fold(images, labels, folds, cfg)
    assert np.allclose(probs, again.probabilities, atol=1e-6) and again.age is None  # seeded: the same people, the same verdicts


def test_probes_on_fixed_features_judge_every_photo_out_of_fold():
    """probe_out_of_fold: per fold, one logistic regression per field; a photo's 18 probabilities are its fields'."""
    rng = np.random.default_rng(0)
    frame = _people(genders=[i % 2 for i in range(24)], ages=[i % 3 for i in range(24)])
    labels = frame["class_id"].to_numpy()
    shown = [np.eye(n)[values] for values, n in ((labels // 6, 3), (labels // 3 % 2, 2), (labels % 3, 3))]  # each field, one-hot
    features = np.concatenate([*shown, rng.normal(0, 0.3, (len(frame), 5))], axis=1)  # the labels, plus noise
    folds = np.repeat(np.arange(3), 56)  # eight people a fold
    ages, people = np.repeat(np.arange(20, 80, 2.5), 7), frame["profile_id"].to_numpy()
    seen: dict[int, float] = {}
    result = probe_out_of_fold(features, labels, folds, 1.0, lambda fold, m: seen.setdefault(fold, m["macro_f1"]), ages, people)
    probs = result.probabilities
    assert probs.shape == (168, 18) and np.allclose(probs.sum(axis=1), 1) and list(seen) == [0, 1, 2]
    assert (probs.argmax(axis=1) == labels).mean() > 0.9 and min(seen.values()) > 0.8  # features that show the labels
    assert (pd.Series(result.age).groupby(people).nunique() == 1).all() and np.isfinite(result.age).all()
    assert find_label_issues(frame, probs).empty  # labels the features agree with: nothing to flag
    noisy = frame.copy()
    noisy.loc[noisy["profile_id"] == "p4", ["gender", "class_id"]] = [1, noisy.loc[noisy["profile_id"] == "p4", "class_id"].iat[0] + 3]
    again = probe_out_of_fold(features, noisy["class_id"].to_numpy(), folds, 1.0)
    assert again.age is None
    found = find_label_issues(noisy, again.probabilities)
    assert found[["profile_id", "field", "given", "suggested"]].values.tolist() == [["p4", "gender", "female", "male"]]
    # a field that carries one value in the other folds has nothing to tell apart: that value, surely
    one_gender = frame.assign(class_id=frame["class_id"] % 3 + 6 * (frame["class_id"] // 6))  # everyone male
    lone = probe_out_of_fold(features, one_gender["class_id"].to_numpy(), folds).probabilities
    assert np.allclose(field_probabilities(lone)["gender"][:, 0], 1)


def _lite0_weights(folder: Path) -> Path:
    """A randomly initialised EfficientNet-Lite0 saved as `maskops fetch-models` saves the real one (with its classifier)."""
    import timm
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    path = folder / "efficientnet_lite0.safetensors"
    save_file(timm.create_model("efficientnet_lite0").state_dict(), str(path))
    return path


def test_frozen_features_come_from_the_provisioned_weights_and_name_the_command_without_them(tmp_path: Path, monkeypatch):
    from maskops.pretrained import PretrainedMissingError

    images = torch.randint(0, 255, (5, 3, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    monkeypatch.setenv("MASKOPS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MASKOPS_MODELS", raising=False)
    with pytest.raises(PretrainedMissingError, match="maskops fetch-models --backbone efficientnet_lite0"):
        frozen_features(images, "efficientnet_lite0", device="cpu")
    weights = _lite0_weights(tmp_path / "home" / "models")  # where fetch-models puts it
    features = frozen_features(images, "efficientnet_lite0", device="cpu")
    assert features.shape == (5, 16 + 24 + 40 + 112 + 320) and np.isfinite(features).all()  # every stage's mean
    assert np.allclose(features, frozen_features(images, "efficientnet_lite0", str(weights), "cpu"), atol=1e-5)  # a file named
    assert np.allclose(features[2:3], frozen_features(images[2:3], "efficientnet_lite0", device="cpu"), atol=1e-4)  # per photo
    with pytest.raises(ValueError, match="method must be one of"):
        LabelIssuesConfig(method="finetune")


def test_label_issues_asset(tiny_dataset: Path, tmp_path: Path):
    """The default: probes on the frozen features of the provisioned EfficientNet-Lite0 (here random weights)."""
    weights = _lite0_weights(tmp_path / "weights")
    result, layout = _materialize_label_issues(tiny_dataset, tmp_path, {"probe_weights": str(weights), "probe_image_size": 64})
    _check_label_issues(result, layout, tmp_path)
    meta = result.asset_materializations_for_node("label_issues")[0].metadata
    assert meta["judged_by"].value == "probes on frozen efficientnet_lite0 features"


def test_label_issues_asset_with_models_trained_per_fold(tiny_dataset: Path, tmp_path: Path):
    result, layout = _materialize_label_issues(tiny_dataset, tmp_path, {"method": "train", "image_size": 32, "epochs": 1})
    _check_label_issues(result, layout, tmp_path)
    assert result.asset_materializations_for_node("label_issues")[0].metadata["judged_by"].value == "a resnet10t trained per fold"


def _materialize_label_issues(tiny_dataset: Path, tmp_path: Path, settings: dict):
    from assets.label_issues import label_issues
    from maskops.layout import scan_competition
    from maskops.splits import split_profiles
    from tests.conftest import pipeline_resources, stub_asset

    layout = scan_competition(tiny_dataset)
    crops = layout.train.assign(crop_path=layout.train["path"])
    split = split_profiles(layout.train, n_folds=3, seed=0)
    config = {"ops": {"label_issues": {"config": {**settings, "sheet": 4}}}}
    return dg.materialize(
        [stub_asset("relabeled_crops", crops), stub_asset("profile_split", split), label_issues],
        resources=pipeline_resources(tmp_path, tiny_dataset), run_config=config, instance=dg.DagsterInstance.ephemeral(),
    ), layout  # fmt: skip


def _check_label_issues(result, layout, tmp_path: Path) -> None:
    assert result.success
    issues = result.output_for_node("label_issues")
    assert list(issues.columns) == list(ISSUE_COLUMNS) and set(issues["field"]) <= {"mask", "gender", "age_group"}
    assert set(issues["profile_id"]) <= set(layout.train["profile_id"])
    meta = result.asset_materializations_for_node("label_issues")[0].metadata
    held_out = meta["held_out_macro_f1"].value  # one figure per fold of the split: how much the judges know
    assert sorted(held_out) == ["0", "1", "2"] and all(0 <= v <= 1 for v in held_out.values())
    assert meta["age_median_error_years"].value >= 0  # the age judgement's yardstick: recorded vs shown ages
    assert meta["photos_checked"].value == len(layout.train) and meta["people_checked"].value == layout.train["profile_id"].nunique()
    assert meta["suspects"].value == len(issues) and sum(meta["per_field"].value.values()) == len(issues)
    assert len(meta["top_suspects"].records) == min(25, len(issues))
    assert meta["person_errors_left"].value == 0 and "person_recall_top_2k" not in meta  # the tiny dataset has no injected noise
    assert meta["against_ground_truth"].value["mask"]["wrong"] == 0
    assert pd.read_parquet(tmp_path / "manifests" / "label_issues.parquet").equals(issues)  # what a reviewer's tool will read
