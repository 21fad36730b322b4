"""The whole data graph in Dagster: raw -> relabeled -> split -> cleaned -> generated -> *_crops."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from assets.cropped import VARIANTS, build_cropped
from assets.definitions import data_assets
from assets.sources import sources
from maskops.synth.people import SynthConfig, synthesize
from resources import FaceDetectorResource
from tests.conftest import TINY, pipeline_resources
from tests.onnx_models import brightness_segmenter

ASSETS = [sources, *data_assets]
CROP_OPS = {f"{v}_crops": {"config": {"background_model": "u2net_custom"}} for v in VARIANTS}
RUN_CONFIG = {"ops": {**CROP_OPS, "profile_split": {"config": {"n_folds": 3}}, "generated_dataset": {"config": {"stage": 2}}}}


def _resources(root: Path, state: Path, models_dir: Path) -> dict:
    return pipeline_resources(state, root, models_dir)


def _meta(result: dg.ExecuteInProcessResult, key: str) -> dict:
    (event,) = [m for m in result.get_asset_materialization_events() if m.asset_key.to_user_string() == key]
    return {k: v.value for k, v in event.materialization.metadata.items()}


@pytest.fixture
def labelled_state(dataset_copy: Path, tmp_path: Path) -> tuple[Path, Path]:
    state = tmp_path / "state"
    profiles = sorted(pd.read_csv(dataset_copy / "train/train.csv", dtype=str)["path"])
    (state / "labels").mkdir(parents=True)
    (state / "labels/corrections.csv").write_text(f"profile_id,stem,field,value,reason\n{profiles[0]},,age,61,looks older\n")
    (state / "labels/exclusions.csv").write_text(f"profile_id,stem,reason\n{profiles[1]},,blurry\n")
    return dataset_copy, state


def test_whole_graph_materializes_with_lineage_and_metadata(labelled_state, models_dir: Path):
    root, state = labelled_state
    result = dg.materialize(
        ASSETS, resources=_resources(root, state, models_dir), run_config=RUN_CONFIG, instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    manifests = {p.stem: pd.read_parquet(p) for p in (state / "manifests").rglob("*.parquet")}
    assert {"raw_dataset", "relabeled_dataset", "cleaned_dataset", "generated_dataset", "profile_split", "eval_dataset"} <= set(manifests)
    assert {"raw", "relabeled", "cleaned", "generated", "eval", "mask_only"} == {
        p.stem.removesuffix("_crops") for p in (state / "manifests").glob("*_crops.parquet")
    }
    # the real faces under mask_only/, cropped exactly as relabeled_crops (no settings of their own to drift apart)
    mask_only = pd.read_parquet(state / "manifests/mask_only_crops.parquet")
    assert len(mask_only) == len(manifests["mask_only_dataset"]) > 0 and mask_only["crop_path"].notna().all()
    assert set(mask_only["crop_recipe"]) == set(pd.read_parquet(state / "manifests/relabeled_crops.parquet")["crop_recipe"])
    assert set(mask_only["class_id"]) <= {18, 19, 20} and _meta(result, "mask_only_dataset")["images_not_wear"] == 2

    relabeled = manifests["relabeled_dataset"]
    assert relabeled["label_changed"].sum() == 7 and (relabeled.loc[relabeled["label_changed"], "age_group"] == 2).all()
    assert _meta(result, "relabeled_dataset")["relabeled_images"] == 7
    cleaned = manifests["cleaned_dataset"]
    assert len(cleaned) == len(relabeled) - 7 and _meta(result, "cleaned_dataset")["removed_images"] == 7

    split = manifests["profile_split"]
    generated = manifests["generated_dataset"]
    new = generated[generated["generator"] != ""]
    assert len(generated) == len(cleaned) + len(new) and len(new) % 7 == 0
    training = set(split.loc[split["role"] == "train", "profile_id"])
    assert set(new["source_profile_id"]) <= training  # generated people come from training profiles only

    processed = {v: _meta(result, f"{v}_crops")["processed_images"] for v in VARIANTS}
    assert processed["raw"] + processed["relabeled"] + processed["cleaned"] == 7 * TINY.profiles  # each crop computed once
    assert processed["generated"] == len(new) and processed["eval"] == 7 * TINY.eval_profiles
    cropped = pd.read_parquet(state / "manifests/generated_crops.parquet")
    assert cropped["crop_path"].str.startswith("store:").all() and len(cropped) == len(generated)
    assert cropped["crop_recipe"].nunique() == 1  # every row says how its crop was made
    meta = _meta(result, "raw_crops")
    assert 0 <= meta["detection_rate"] <= 1 and meta["crop_recipe"]["detector"] == {"thresholds": [0.6, 0.7, 0.7], "min_face_size": 20}
    sheets = [("raw_crops", "samples"), ("generated_dataset", "samples"), ("raw_dataset", "samples"),
              ("relabeled_dataset", "relabeled_samples"), ("cleaned_dataset", "removed_samples")]  # fmt: skip
    for key, sheet in sheets:  # contact sheets are files the metadata links to
        assert Path(_meta(result, key)[sheet]).read_bytes()[:4] == b"\x89PNG", key
    inlined = [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
               if "base64" in str(e.materialization.metadata)]  # fmt: skip
    assert not inlined  # no picture travels inside the event log


def test_adding_profiles_processes_only_the_new_images(labelled_state, models_dir: Path, tmp_path: Path):
    root, state = labelled_state
    resources = _resources(root, state, models_dir)
    instance = dg.DagsterInstance.ephemeral()
    first = dg.materialize(ASSETS, resources=resources, run_config=RUN_CONFIG, instance=instance)
    assert first.success
    # one more person, drawn by the same seed: the first six stay byte-identical
    bigger = tmp_path / "bigger"
    synthesize(bigger, SynthConfig(**{**TINY.__dict__, "profiles": TINY.profiles + 1}), workers=2)
    new_folder = pd.read_csv(bigger / "train/train.csv", dtype=str).iloc[-1]
    shutil.copytree(bigger / "train/images" / new_folder["path"], root / "train/images" / new_folder["path"])
    shutil.copy(bigger / "train/train.csv", root / "train/train.csv")
    split_before = pd.read_parquet(state / "manifests/profile_split.parquet")
    again = dg.materialize(ASSETS, resources=resources, run_config=RUN_CONFIG, instance=instance)
    assert again.success
    split_after = pd.read_parquet(state / "manifests/profile_split.parquet")
    assert split_before.merge(split_after, on=["profile_id", "fold", "role"]).shape[0] == TINY.profiles  # nobody moved
    assert _meta(again, "profile_split")["profiles_placed"] == 1
    processed = {v: _meta(again, f"{v}_crops")["processed_images"] for v in VARIANTS}
    assert processed["raw"] == 7 and processed["relabeled"] == 0 and processed["eval"] == 0
    assert processed["cleaned"] == 0  # its images are the raw ones, already cropped
    assert _meta(again, "raw_crops")["reused_images"] == 7 * TINY.profiles


def test_bad_corrections_stop_the_run_naming_the_row(labelled_state, models_dir: Path):
    root, state = labelled_state
    (state / "labels/corrections.csv").write_text("profile_id,stem,field,value,reason\nnobody,,age,30,x\n")
    result = dg.materialize(ASSETS[:5], resources=_resources(root, state, models_dir), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "corrections.csv line 2: unknown profile 'nobody'" in failure.step_failure_data.error.to_string()


def test_crops_are_keyed_on_every_setting_and_on_the_model_files_content(dataset_copy: Path, models_dir: Path, tmp_path: Path):
    """Detector settings and the background model's bytes change a crop, so they change its key: no stale crop is reused."""
    from assets.raw import competition_dataset

    own_models = tmp_path / "models"
    brightness_segmenter(own_models / "tiny_segmenter.onnx")
    resources = _resources(dataset_copy, tmp_path / "state", own_models)
    assets = [sources, competition_dataset, build_cropped("eval", "eval_dataset")]
    config = {"ops": {"eval_crops": {"config": {"background_model": "u2net_custom"}}}}
    instance = dg.DagsterInstance.ephemeral()

    def processed(resources: dict) -> int:
        result = dg.materialize(assets, resources=resources, run_config=config, instance=instance, selection=[dg.AssetKey("eval_crops")])
        return _meta(result, "eval_crops")["processed_images"]

    assert dg.materialize(assets[:2], resources=resources, instance=instance).success
    images = 7 * TINY.eval_profiles
    assert processed(resources) == images
    assert processed(resources) == 0  # nothing changed: all reused
    assert processed({**resources, "face_detector": FaceDetectorResource(threads=1, thresholds=[0.5, 0.6, 0.6])}) == images
    assert processed({**resources, "face_detector": FaceDetectorResource(threads=1, min_face_size=40)}) == images
    brightness_segmenter(own_models / "tiny_segmenter.onnx", scale=8.0)  # same file name, other weights
    assert processed(resources) == images
    assert processed(resources) == 0
