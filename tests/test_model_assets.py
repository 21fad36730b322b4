"""<variant>_model in Dagster with a real (temporary) MLflow store and registry."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
import torch

from assets.models import build_model_asset, build_model_check
from maskops.layout import scan_competition
from maskops.splits import split_profiles
from tests.conftest import photos_as_crops, pipeline_resources, stub_asset, tiny_recipe

TRAINING = {"preset": "scratch", "backbone": "resnet10t", "image_size": 32, "epochs": 2, "batch_size": 16, "gradcam_images": 4}


def _upstream(tiny_dataset: Path, models_dir: Path, mask_only_recipe: str | None = None, **crop) -> list:
    layout = scan_competition(tiny_dataset)
    crops = photos_as_crops(layout.train, tiny_recipe(models_dir, **crop))
    split = split_profiles(layout.train, n_folds=3, seed=0)
    mask_only = photos_as_crops(layout.mask_only, mask_only_recipe or tiny_recipe(models_dir, **crop))
    return [stub_asset("relabeled_crops", crops), stub_asset("raw_crops", crops), stub_asset("profile_split", split),
            stub_asset("mask_only_crops", mask_only)]  # fmt: skip


def _versions(tracking, name: str) -> list:
    return tracking.service().client.search_model_versions(f"name = '{name}'")


def test_model_asset_tracks_and_registers_once_its_check_passes(tiny_dataset: Path, models_dir: Path, tmp_path: Path, tracking_store):
    model, check = build_model_asset("relabeled"), build_model_check("relabeled")
    before = len(_versions(tracking_store, "maskops-relabeled"))
    result = dg.materialize(
        [*_upstream(tiny_dataset, models_dir), model, check],
        resources=pipeline_resources(tmp_path, tiny_dataset, models_dir, tracking_store),
        run_config={
            "ops": {"relabeled_model": {"config": TRAINING}, "relabeled_model_model_quality": {"config": {"min_val_macro_f1": 0.0}}}
        },
    )
    assert result.success
    record = result.output_for_node("relabeled_model")
    assert (
        record["model_uri"] == f"models:/{record['model_id']}"
        and json.loads(record["crop_recipe"])["config"]["background_model"] == "u2net_custom"
    )
    assert (tmp_path / "records/relabeled_model.json").exists() and not list((tmp_path / "checkpoints").rglob("last.pt"))

    client = tracking_store.service().client
    run = client.get_run(record["run_id"])
    assert run.data.params["backbone"] == "resnet10t" and run.data.params["variant"] == "relabeled" and run.data.params["epochs"] == "2"
    assert run.data.tags["dagster.run_id"] == result.run_id and run.data.tags["dagster.asset_key"] == "relabeled_model"
    assert "maskops.input_data_version" in run.data.tags and run.data.tags["maskops.code_version"]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "epoch_val_macro_f1")] == [0, 1]
    assert run.data.metrics["val_macro_f1"] == pytest.approx(record["val_metrics"]["macro_f1"])  # the best epoch, as in Dagster
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    names = ("confusion_matrix.png", "gradcam.png", "per_class_report.csv", "config.json", "history.json", "crop_recipe.json")
    assert artifacts == {f"evaluation/{n}" for n in names}
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"relabeled_crops (training)", "relabeled_crops (validation)"}

    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.metadata["non_finite_tensors"].value == []
    versions = _versions(tracking_store, "maskops-relabeled")
    assert len(versions) == before + 1  # registered by the passing check, exactly once
    (version,) = [v for v in versions if v.run_id == record["run_id"]]
    assert evaluation.metadata["registered"].value.endswith(f"/models/maskops-relabeled/versions/{version.version}")  # a link
    assert evaluation.description.startswith("validation macro F1 ") and "floor 0.0" in evaluation.description
    assert json.loads(version.tags["maskops.quality"])["floor"] == 0.0
    served = tracking_store.service().load_pytorch(f"models:/maskops-relabeled/{version.version}")
    probs = served(torch.randn(3, 3, 32, 32))
    assert probs.shape == (3, 18) and torch.allclose(probs.sum(1), torch.ones(3), atol=1e-4)
    requirements = tracking_store.service().download(record["model_uri"], tmp_path / "dl") / "requirements.txt"
    assert "maskops" not in requirements.read_text().split()  # only pinned, published packages
    assert all("==" in line for line in requirements.read_text().split())

    meta = result.asset_materializations_for_node("relabeled_model")[0].metadata
    for figure in ("confusion_matrix", "gradcam"):  # pictures are files the metadata links to, not inlined
        assert isinstance(meta[figure], dg.PathMetadataValue) and Path(meta[figure].value).read_bytes()[:4] == b"\x89PNG"
    assert meta["trainable_parameters"].value > 0 and "resumed_from_epoch" not in meta
    # the tiny dataset's real faces under mask_only/ trained the mask task with the people's photos
    assert meta["mask_only_images"].value == len(scan_competition(tiny_dataset).mask_only) > 0
    assert int(run.data.params["train_images"]) == record["train_images"] > meta["mask_only_images"].value


def test_a_model_below_the_floor_is_never_registered(tiny_dataset: Path, models_dir: Path, tmp_path: Path, tracking_store):
    model, check = build_model_asset("raw"), build_model_check("raw")
    result = dg.materialize(
        [*_upstream(tiny_dataset, models_dir), model, check],
        resources=pipeline_resources(tmp_path, tiny_dataset, models_dir, tracking_store),
        run_config={
            "ops": {"raw_model": {"config": {**TRAINING, "epochs": 1}}, "raw_model_model_quality": {"config": {"min_val_macro_f1": 0.99}}}
        },
        raise_on_error=False,
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.metadata["floor"].value == 0.99
    assert evaluation.metadata["val_macro_f1"].value < 0.99 and evaluation.metadata["registered"].value.startswith("no")
    record = result.output_for_node("raw_model")
    assert not [v for v in _versions(tracking_store, "maskops-raw") if v.run_id == record["run_id"]]  # logged, but not in the registry
    assert tracking_store.service().client.get_run(record["run_id"]).info.status == "FINISHED"


@pytest.mark.parametrize("mixed", ["training", "mask_only"])
def test_training_and_validation_crops_made_differently_are_refused(tiny_dataset: Path, models_dir: Path, tmp_path: Path, tracking_store,
                                                                     mixed: str):  # fmt: skip
    layout = scan_competition(tiny_dataset)
    other = tiny_recipe(models_dir, margin=10)
    upstream = [
        stub_asset("raw_crops", photos_as_crops(layout.train, other if mixed == "training" else tiny_recipe(models_dir))),
        stub_asset("relabeled_crops", photos_as_crops(layout.train, tiny_recipe(models_dir))),
        stub_asset("profile_split", split_profiles(layout.train, n_folds=3, seed=0)),
        stub_asset("mask_only_crops", photos_as_crops(layout.mask_only, other if mixed == "mask_only" else tiny_recipe(models_dir))),
    ]
    result = dg.materialize([*upstream, build_model_asset("raw")], resources=pipeline_resources(tmp_path, tiny_dataset, models_dir, tracking_store),
                            run_config={"ops": {"raw_model": {"config": TRAINING}}}, raise_on_error=False)  # fmt: skip
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    error = failure.step_failure_data.error.to_string()
    assert ("different crop settings" if mixed == "training" else "mask_only_crops was made with other crop settings") in error
