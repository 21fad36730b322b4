"""Synthetic people: layout, determinism, label noise ground truth, imbalance, detectability."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from maskops.labels import Gender, MaskState
from maskops.layout import scan_competition
from maskops.synth.people import RECEIPT, SynthConfig, SynthError, plan, synthesize
from tests.conftest import TINY, snapshot


def _bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != RECEIPT}


def test_same_seed_same_bytes_and_supersets(tmp_path: Path):
    small = SynthConfig(profiles=2, eval_profiles=1, seed=11)
    synthesize(tmp_path / "a", small, workers=1)
    synthesize(tmp_path / "b", small, workers=2)
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")
    synthesize(tmp_path / "c", SynthConfig(profiles=2, eval_profiles=1, seed=12), workers=2)
    assert _bytes(tmp_path / "c") != _bytes(tmp_path / "a")
    # more profiles with the same seed: the first ones are unchanged
    synthesize(tmp_path / "d", SynthConfig(profiles=3, eval_profiles=1, seed=11), workers=2)
    a, d = _bytes(tmp_path / "a"), _bytes(tmp_path / "d")
    shared = [k for k in a if k.startswith("train/images/")]
    assert len(shared) == 14 and all(a[k] == d[k] for k in shared)


def test_output_is_in_the_competition_layout(tiny_dataset: Path):
    layout = scan_competition(tiny_dataset)
    assert len(layout.train) == 42 and len(layout.eval) == 14
    answers = pd.read_csv(tiny_dataset / "ground_truth/eval_answers.csv")
    info = pd.read_csv(tiny_dataset / "eval/info.csv")
    assert list(answers["ImageID"]) == list(info["ImageID"]) and (info["ans"] == 0).all()
    assert answers["ans"].between(0, 17).all()


def test_existing_dataset_is_reused_or_refused(tiny_dataset: Path, tmp_path: Path):
    before = snapshot(tiny_dataset)
    receipt = synthesize(tiny_dataset, TINY)  # same settings: nothing redrawn
    assert snapshot(tiny_dataset) == before and receipt["train_images"] == 42
    with pytest.raises(SynthError, match="--force"):
        synthesize(tiny_dataset, SynthConfig(profiles=7, seed=3))
    (tmp_path / "occupied").mkdir()
    with pytest.raises(SynthError, match="exists"):
        synthesize(tmp_path / "occupied", TINY)


@pytest.mark.parametrize("bad", [dict(profiles=0), dict(profiles=1, gender_noise=-0.1), dict(profiles=1, age_noise=0.7, gender_noise=0.5)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(SynthError):
        SynthConfig(**bad)


def test_label_noise_ground_truth_matches_what_was_written(tmp_path: Path):
    config = SynthConfig(profiles=12, eval_profiles=0, seed=5, gender_noise=0.25, age_noise=0.25, mask_swap_noise=0.25)
    root = tmp_path / "noisy"
    synthesize(root, config, workers=2)
    noise = pd.read_csv(root / "ground_truth/label_noise.csv", dtype=str, keep_default_na=False)
    people = pd.read_csv(root / "ground_truth/people.csv", dtype=str, keep_default_na=False).set_index("profile_id")
    train = pd.read_csv(root / "train/train.csv", dtype=str).set_index("path")
    assert set(noise["field"]) == {"gender", "age", "mask"}
    for row in noise.itertuples():
        recorded = train.loc[row.profile_id]
        assert row.recorded != row.true
        if row.field == "gender":
            assert recorded["gender"] == row.recorded and people.loc[row.profile_id, "true_gender"] == row.true
        elif row.field == "age":
            assert recorded["age"] == row.recorded and people.loc[row.profile_id, "true_age"] == row.true
        else:  # the incorrect_mask and normal files show each other's state
            assert row.image_id.endswith(("/incorrect_mask", "/normal"))
    swapped = noise[noise["field"] == "mask"]["profile_id"].unique()
    assert len(noise[noise["field"] == "mask"]) == 2 * len(swapped)
    assert set(people[people["noise"] != ""].index) == set(noise["profile_id"])
    receipt = json.loads((root / RECEIPT).read_text())
    assert receipt["noisy_profiles"] == noise["profile_id"].nunique()


def test_class_imbalance_resembles_the_competition():
    train, *_ = plan(SynthConfig(profiles=3000, seed=1))
    ages = train["age"].astype(int)
    old = (ages >= 60).mean()
    assert 0.04 < old < 0.11, old  # the >=60 group is rare
    assert 0.55 < (train["gender"] == "female").mean() < 0.65
    # ages are continuous across the boundaries, so 29/30 and 59/60 both occur
    assert {29, 30, 59, 60} <= set(ages)


def test_mask_states_are_5_1_1_per_person(tiny_dataset: Path):
    counts = scan_competition(tiny_dataset).train["mask"].value_counts()
    assert counts[MaskState.WEAR] == 5 * counts[MaskState.INCORRECT] == 5 * counts[MaskState.NOT_WEAR]


@pytest.mark.slow
def test_mtcnn_finds_a_face_in_at_least_90_percent(tmp_path: Path):
    from facenet_pytorch import MTCNN
    from PIL import Image

    root = tmp_path / "sample"
    synthesize(root, SynthConfig(profiles=12, seed=2024), workers=2)
    manifest = scan_competition(root).train
    detector = MTCNN(device="cpu")
    found = []
    for row in manifest.itertuples():
        boxes, _probs = detector.detect(Image.open(root / row.path).convert("RGB"))
        found.append(boxes is not None)  # MTCNN's own thresholds
    rate = float(np.mean(found))
    per_mask = manifest.assign(found=found).groupby("mask")["found"].mean().round(2).to_dict()
    assert rate >= 0.9, f"MTCNN found faces in {rate:.0%} of {len(found)} images; by mask state: {per_mask}"


def test_gender_and_age_shape_the_look():
    from maskops.synth.face import random_look

    rng = np.random.default_rng(0)
    young = [random_look(rng, Gender.FEMALE, 22, "Asian") for _ in range(50)]
    old = [random_look(rng, Gender.MALE, 68, "Asian") for _ in range(50)]
    assert all(look.beard == "none" for look in young)
    assert np.mean([look.greyness for look in old]) > 0.5 > np.mean([look.greyness for look in young])
    assert np.mean([look.wrinkles for look in old]) > np.mean([look.wrinkles for look in young])
    assert np.mean([look.jaw for look in old]) > np.mean([look.jaw for look in young])


def test_real_faces_for_the_mask_task_never_include_the_measured_ones(tiny_dataset: Path):
    """`mask_only_faces` real faces of lfw_subset go under mask_only/ — the last ones, never the MEASURED_FACES that
    bench/real_photos.py measures the champion on; unmasked, and painted as worn and as worn wrongly."""
    from maskops.synth.real_faces import MEASURED_FACES, training_faces

    names = sorted(p.stem for p in (tiny_dataset / "mask_only").rglob("*.jpg"))
    faces = {int(n.split("_")[1]) for n in names}
    assert faces == set(training_faces(TINY.mask_only_faces)) and min(faces) >= MEASURED_FACES
    painted = {p.parent.name for p in (tiny_dataset / "mask_only").rglob("lfw_*_*.jpg")}
    assert painted <= {"wear", "incorrect"} and len(list((tiny_dataset / "mask_only/not_wear").iterdir())) == TINY.mask_only_faces
    assert json.loads((tiny_dataset / RECEIPT).read_text())["mask_only_images"] == len(names)
    with pytest.raises(SynthError, match=r"mask_only_faces must be 0\.\.40"):
        SynthConfig(profiles=1, mask_only_faces=41)
    with pytest.raises(ValueError, match="at most 40 real faces"):
        training_faces(41)


def test_a_dataset_drawn_before_mask_only_existed_is_still_recognised(tmp_path: Path):
    """Receipts written before `mask_only_faces` existed read as 0 mask-only faces: the same settings, nothing redrawn."""
    config = SynthConfig(profiles=1, seed=5)
    synthesize(tmp_path / "d", config, workers=1)
    receipt = json.loads((tmp_path / "d" / RECEIPT).read_text())
    del receipt["config"]["mask_only_faces"]
    (tmp_path / "d" / RECEIPT).write_text(json.dumps(receipt))
    assert synthesize(tmp_path / "d", config, workers=1)["config"]["mask_only_faces"] == 0
