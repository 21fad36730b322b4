"""model/<variant> in Dagster with a real (temporary) MLflow store and registry."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from assets.models import build_model_asset, build_model_check
from maskops.layout import scan_competition
from maskops.splits import split_profiles
from resources import CompetitionDataset, Compute, ImageStoreResource, MlflowTracking, RecordIOManager

TRAINING = {"preset": "demo", "backbone": "resnet10t", "image_size": 32, "epochs": 2, "batch_size": 16, "gradcam_images": 4}


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> MlflowTracking:
    root = tmp_path_factory.mktemp("mlflow")
    tracking = MlflowTracking(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_root=str(root / "artifacts"), experiment="maskops-test"
    )
    tracking.activate()  # creating the SQLite store runs its migrations once
    return tracking


def _upstream(tiny_dataset: Path) -> list:
    manifest = scan_competition(tiny_dataset).train
    crops = manifest.assign(crop_path=manifest["path"], crop_key=manifest["content_hash"])  # the photos stand in for crops
    split = split_profiles(manifest, n_folds=3, seed=0)

    def stub(key, value):
        @dg.asset(key=key, io_manager_key="manifest_io_manager")
        def _stub() -> pd.DataFrame:
            return value

        return _stub

    return [stub(["cropped", "relabeled"], crops), stub(["cropped", "raw"], crops), stub("profile_split", split)]


def _resources(tiny_dataset: Path, tmp_path: Path, mlflow_store: MlflowTracking) -> dict:
    from resources import ManifestIOManager

    return {
        "dataset": CompetitionDataset(root=str(tiny_dataset)),
        "image_store": ImageStoreResource(root=str(tmp_path / "images")),
        "manifest_io_manager": ManifestIOManager(base_path=str(tmp_path / "manifests")),
        "record_io_manager": RecordIOManager(base_path=str(tmp_path / "records")),
        "mlflow": mlflow_store,
        "compute": Compute(checkpoints_dir=str(tmp_path / "checkpoints"), device="cpu"),
    }


def test_model_asset_tracks_registers_and_is_checked(tiny_dataset: Path, tmp_path: Path, mlflow_store: MlflowTracking):
    import mlflow
    from mlflow import MlflowClient

    model, check = build_model_asset("relabeled"), build_model_check("relabeled")
    result = dg.materialize(
        [*_upstream(tiny_dataset), model, check],
        resources=_resources(tiny_dataset, tmp_path, mlflow_store),
        run_config={
            "ops": {"model__relabeled": {"config": TRAINING}, "model__relabeled_model_quality": {"config": {"min_val_macro_f1": 0.0}}}
        },
    )
    assert result.success
    record = result.output_for_node("model__relabeled")
    assert set(record) >= {"run_id", "model_uri", "val_metrics", "version"} and record["model_uri"].startswith("models:/maskops-relabeled/")
    assert (tmp_path / "records/model/relabeled.json").exists() and not list((tmp_path / "checkpoints").rglob("last.pt"))

    mlflow_store.activate()
    client = MlflowClient()
    run = client.get_run(record["run_id"])
    assert run.data.params["backbone"] == "resnet10t" and run.data.params["variant"] == "relabeled" and run.data.params["epochs"] == "2"
    assert run.data.tags["dagster.run_id"] == result.run_id and run.data.tags["dagster.asset_key"] == "model/relabeled"
    assert "maskops.input_data_version" in run.data.tags and run.data.tags["maskops.code_version"]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_macro_f1")] == [0, 1]
    assert run.data.metrics["best_val_macro_f1"] == pytest.approx(record["val_metrics"]["macro_f1"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert artifacts == {
        f"evaluation/{n}" for n in ("confusion_matrix.png", "gradcam.png", "per_class_report.csv", "config.json", "history.json")
    }
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"cropped/relabeled (training)", "cropped/relabeled (validation)"}
    version = client.get_model_version("maskops-relabeled", record["version"])
    assert version.run_id == record["run_id"]
    served = mlflow.pytorch.load_model(record["model_uri"])
    import torch

    probs = served(torch.randn(3, 3, 32, 32))
    assert probs.shape == (3, 18) and torch.allclose(probs.sum(1), torch.ones(3), atol=1e-4)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.metadata["non_finite_tensors"].value == []
    meta = result.asset_materializations_for_node("model__relabeled")[0].metadata
    assert meta["confusion_matrix"].value.startswith("![confusion matrix](data:image/png") and meta["trainable_parameters"].value > 0


def test_model_below_the_floor_fails_its_blocking_check(tiny_dataset: Path, tmp_path: Path, mlflow_store: MlflowTracking):
    model, check = build_model_asset("raw"), build_model_check("raw")
    result = dg.materialize(
        [*_upstream(tiny_dataset), model, check],
        resources=_resources(tiny_dataset, tmp_path, mlflow_store),
        run_config={
            "ops": {"model__raw": {"config": {**TRAINING, "epochs": 1}}, "model__raw_model_quality": {"config": {"min_val_macro_f1": 0.99}}}
        },
        raise_on_error=False,
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.metadata["floor"].value == 0.99
    assert evaluation.metadata["val_macro_f1"].value < 0.99
