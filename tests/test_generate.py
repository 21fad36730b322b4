"""Generated people: targets, stability under new data, provenance, skipped faces, age model."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from maskops.generate import AgeModel, GenerateConfig, generate, pending_generation, plan_generation
from maskops.labels import PROFILE_STEMS, STEM_MASK, encode
from maskops.layout import scan_competition
from maskops.store import ImageSource, ImageStore
from tests.onnx_models import darkening_age_model


def _profiles(groups: dict[int, int]) -> pd.DataFrame:
    rows = []
    for group, n in groups.items():
        for i in range(n):
            rows.append({"profile_id": f"{group}{i:04d}_x_Asian_{[20, 40, 62][group]}", "gender": i % 2, "race": "Asian",
                         "age": [20, 40, 62][group], "age_group": group})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("stage", "target"), [(1, 30), (2, 60)])
def test_plan_tops_up_age_groups(stage: int, target: int):
    profiles = _profiles({0: 30, 1: 21, 2: 4})
    plan = plan_generation(profiles, GenerateConfig(stage=stage))
    after = profiles["age_group"].value_counts() + plan["age_group"].value_counts().reindex([0, 1, 2], fill_value=0)
    assert after.to_dict() == {0: target, 1: target, 2: target}
    assert plan["profile_id"].is_unique
    for row in plan.itertuples():  # a generated person keeps the age group and gender of its source
        src = profiles.set_index("profile_id").loc[row.source_profile_id]
        assert src["age_group"] == row.age_group and src["gender"] == row.gender
    old = plan[plan["age_group"] == 2].groupby("source_profile_id").size()
    assert old.max() - old.min() <= 1  # sources share the work evenly


def test_plan_is_stable_when_data_is_added():
    profiles = _profiles({0: 30, 1: 21, 2: 4})
    before = set(plan_generation(profiles, GenerateConfig())["profile_id"])
    more = pd.concat([profiles, _profiles({0: 32}).iloc[30:]], ignore_index=True)  # two new young people
    after = set(plan_generation(more, GenerateConfig())["profile_id"])
    assert len(before & after) >= 0.9 * len(before)


@pytest.fixture
def sources(tiny_dataset: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    train = scan_competition(tiny_dataset).train
    profiles = train.drop_duplicates("profile_id")
    normals = train[train["stem"] == "normal"][["profile_id", "image_id", "path", "content_hash"]].rename(
        columns={"profile_id": "source_profile_id"}
    )
    return profiles, normals


def test_generate_writes_seven_labelled_images_per_person(tiny_dataset: Path, sources, face_detector, tmp_path: Path):
    profiles, normals = sources
    store = ImageStore(tmp_path / "store")
    source = ImageSource(tiny_dataset, store)
    plan = plan_generation(profiles, GenerateConfig()).head(2)
    rows, stats = generate(plan, normals, source.open_rgb, store, face_detector, GenerateConfig())
    assert stats.generated_profiles == 2 and stats.images == 14 and stats.skipped_no_face == 0
    for person, images in rows.groupby("profile_id"):
        assert sorted(images["stem"]) == sorted(PROFILE_STEMS)
        planned = plan.set_index("profile_id").loc[person]
        for r in images.itertuples():
            assert r.mask == STEM_MASK[r.stem] and r.class_id == encode(r.mask, planned["gender"], planned["age_group"])
            assert r.source_profile_id == planned["source_profile_id"] and r.source_image_id.endswith("/normal")
            assert r.generator == "maskpaint/1" and r.path.startswith("store:") and len(r.content_hash) == 64
    normal = rows[rows["stem"] == "normal"].iloc[0]
    masked = rows[rows["stem"] == "mask1"].iloc[0]
    src = np.asarray(source.open_rgb(normals.set_index("source_profile_id").loc[normal["source_profile_id"], "path"]), float)
    assert np.abs(np.asarray(source.open_rgb(normal["path"]), float) - src).mean() < 3  # the unmasked photo is the source
    assert np.abs(np.asarray(source.open_rgb(masked["path"]), float) - src).mean() > 3  # a mask was painted
    again, stats2 = generate(plan, normals, source.open_rgb, store, face_detector, GenerateConfig())
    assert stats2.reused == 14
    pd.testing.assert_frame_equal(again, rows)


def test_sources_without_a_face_are_skipped_and_counted(sources, face_detector, tmp_path: Path):
    profiles, normals = sources
    plan = plan_generation(profiles, GenerateConfig()).head(3)
    blank = Image.fromarray(np.tile(np.linspace(60, 200, 384, dtype=np.uint8), (512, 1))).convert("RGB")
    rows, stats = generate(plan, normals, lambda _: blank, ImageStore(tmp_path / "s"), face_detector, GenerateConfig())
    assert len(plan) >= 1 and stats.skipped_no_face == len(plan) and rows.empty


def test_age_model_is_applied_before_masking(tiny_dataset: Path, sources, face_detector, tmp_path: Path):
    profiles, normals = sources
    model = darkening_age_model(tmp_path / "age.onnx", factor=0.8)
    config = GenerateConfig(age_model_path=str(model), age_model_group=0, age_model_age=22)
    plan = plan_generation(profiles, config)
    aged = plan[plan["aged"]]
    assert len(aged) and (aged["age"] == 22).all()
    assert not profiles.set_index("profile_id").loc[aged["source_profile_id"], "age_group"].eq(0).any()  # made from other groups
    store = ImageStore(tmp_path / "store")
    source = ImageSource(tiny_dataset, store)
    rows, _ = generate(aged.head(1), normals, source.open_rgb, store, face_detector, config, AgeModel(str(model)))
    normal = rows[rows["stem"] == "normal"].iloc[0]
    src = np.asarray(source.open_rgb(normals.set_index("source_profile_id").loc[normal["source_profile_id"], "path"]), float)
    assert np.asarray(source.open_rgb(normal["path"]), float).mean() == pytest.approx(0.8 * src.mean(), rel=0.03)
    assert rows["generator"].eq("maskpaint/1+age").all()


def test_generated_images_are_keyed_on_the_age_models_content_and_the_detector(tiny_dataset: Path, sources, face_detector, tmp_path: Path):
    from maskops.faces import DetectorConfig

    profiles, normals = sources
    model = darkening_age_model(tmp_path / "age.onnx", factor=0.8)
    config = GenerateConfig(age_model_path=str(model), age_model_group=0, age_model_age=22)
    person = plan_generation(profiles, config).query("aged").head(1)
    store = ImageStore(tmp_path / "store")
    source = ImageSource(tiny_dataset, store)

    def reused(detector_config: DetectorConfig | None = None) -> int:
        _, stats = generate(person, normals, source.open_rgb, store, face_detector, config, AgeModel(str(model)), detector_config)
        return stats.reused

    assert reused() == 0 and reused() == 7
    darkening_age_model(model, factor=0.6)  # the same path, another model
    assert reused() == 0
    assert reused(DetectorConfig(min_face_size=30)) == 0  # where MTCNN places the landmarks decides where the masks go


def test_generation_shared_out_to_processes_leaves_the_serial_pass_only_reuse(tiny_dataset: Path, sources, face_detector, tmp_path: Path):
    """bench/pipeline.py --workers 2: each spawned process paints its share of the plan into the shared store; the serial
    pass after it finds every image there."""
    import importlib

    from tests.test_bench import ROOT

    sys.path.insert(0, str(ROOT / "bench"))  # spawned processes import the pipeline by this name: it must be importable
    pipeline = importlib.import_module("pipeline")
    profiles, normals = sources
    store = ImageStore(tmp_path / "store")
    plan = plan_generation(profiles, GenerateConfig()).head(2)
    assert pending_generation(plan, normals, store, GenerateConfig()).equals(plan)
    pipeline.in_processes("generate", plan, 2, tiny_dataset, store, "cpu", (None, normals, GenerateConfig()))
    assert pending_generation(plan, normals, store, GenerateConfig()).empty  # what the sharded pass left the serial one
    assert len(pending_generation(plan, normals, store, GenerateConfig(seed=1))) == 2  # another recipe: drawn again
    rows, stats = generate(plan, normals, ImageSource(tiny_dataset, store).open_rgb, store, face_detector, GenerateConfig())
    assert stats.generated_profiles == 2 and stats.reused == 14 and len(rows) == 14
