"""kill -9 in the middle of training a model asset: the next materialization resumes from the checkpoint, into the same
MLflow run, which ends up with every epoch's metrics and a FINISHED status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from assets.models import RUN_ID_FILE, build_model_asset
from tests.conftest import pipeline_resources
from tests.test_model_assets import TRAINING, _upstream

REPO = Path(__file__).resolve().parents[2]
EPOCHS = 30
SCRIPT = """
import sys, dagster as dg
from resources import MlflowTracking
from assets.models import build_model_asset
from tests.conftest import pipeline_resources
from tests.test_model_assets import TRAINING, _upstream
from pathlib import Path
state, dataset, models, uri, artifacts, epochs = sys.argv[1:]
tracking = MlflowTracking(tracking_uri=uri, artifact_root=artifacts, experiment="maskops-test")
dg.materialize([*_upstream(Path(dataset), Path(models)), build_model_asset("relabeled")],
               resources=pipeline_resources(Path(state), Path(dataset), Path(models), tracking),
               run_config={"ops": {"relabeled_model": {"config": {**TRAINING, "epochs": int(epochs)}}}})
"""


@pytest.mark.slow
def test_a_killed_training_resumes_into_its_mlflow_run(tiny_dataset: Path, models_dir: Path, tmp_path: Path, tracking_store) -> None:
    state = tmp_path / "state"
    checkpoints = state / "checkpoints" / "relabeled"
    args = [str(state), str(tiny_dataset), str(models_dir), tracking_store.tracking_uri, tracking_store.artifact_root, str(EPOCHS)]
    worker = subprocess.Popen([sys.executable, "-c", SCRIPT, *args], cwd=REPO, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not ((checkpoints / "last.pt").exists() and (checkpoints / RUN_ID_FILE).exists()):
        assert worker.poll() is None and time.monotonic() < deadline, "training ended (or never started) before a checkpoint"
        time.sleep(0.2)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    killed_run = (checkpoints / RUN_ID_FILE).read_text().strip()
    client = tracking_store.service().client
    assert client.get_run(killed_run).info.status == "RUNNING"  # nobody ended it

    result = dg.materialize([*_upstream(tiny_dataset, models_dir), build_model_asset("relabeled")],
                            resources=pipeline_resources(state, tiny_dataset, models_dir, tracking_store),
                            run_config={"ops": {"relabeled_model": {"config": {**TRAINING, "epochs": EPOCHS}}}})  # fmt: skip
    record = result.output_for_node("relabeled_model")
    meta = result.asset_materializations_for_node("relabeled_model")[0].metadata
    assert record["run_id"] == killed_run and meta["resumed_from_epoch"].value >= 0  # the same run, resumed
    run = client.get_run(killed_run)
    assert run.info.status == "FINISHED"
    steps = {m.step for m in client.get_metric_history(killed_run, "epoch_val_macro_f1")}
    assert steps == set(range(meta["epochs_run"].value))  # every epoch's metrics (early stopping may end it early) in one run
    assert not (checkpoints / "last.pt").exists() and not (checkpoints / RUN_ID_FILE).exists()


@pytest.mark.slow
def test_a_crashed_training_retried_with_other_settings_trains_afresh_in_a_new_run(
    tiny_dataset: Path, models_dir: Path, tmp_path: Path, tracking_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crash leaves a checkpoint and its MLflow run's id. A retry with other settings (fewer epochs, another lr,
    the weekly challenger's seed) once reopened that run, whose parameters cannot change: every later attempt failed
    ("Changing param values is not allowed") until someone deleted the files by hand."""
    import tracking.models

    real, crash_at = tracking.models.epoch_logger, {"epoch": 1}

    def crashing(run, log):
        inner = real(run, log)

        def on_epoch(epoch, metrics):
            inner(epoch, metrics)
            if epoch == crash_at["epoch"]:
                raise RuntimeError("power cut")

        return on_epoch

    model, resources = build_model_asset("relabeled"), pipeline_resources(tmp_path, tiny_dataset, models_dir, tracking_store)
    checkpoints = tmp_path / "checkpoints" / "relabeled"

    def train(config: dict, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        return dg.materialize([*_upstream(tiny_dataset, models_dir), model], resources=resources, raise_on_error=raise_on_error,
                              run_config={"ops": {"relabeled_model": {"config": {**TRAINING, **config}}}})  # fmt: skip

    monkeypatch.setattr(tracking.models, "epoch_logger", crashing)
    assert not train({"epochs": 3}, raise_on_error=False).success
    crashed = (checkpoints / RUN_ID_FILE).read_text().strip()
    assert (checkpoints / "last.pt").exists()
    monkeypatch.undo()
    for config in ({"epochs": 2, "lr": 1e-3}, {"epochs": 3, "seed": 202649}):
        result = train(config)
        record, meta = result.output_for_node("relabeled_model"), result.asset_materializations_for_node("relabeled_model")[0].metadata
        assert record["run_id"] != crashed and "resumed_from_epoch" not in meta
        assert 1 <= meta["epochs_run"].value <= config["epochs"]  # early stopping may end it sooner
    assert not (checkpoints / "last.pt").exists() and not (checkpoints / RUN_ID_FILE).exists()
    # a crash (settings S1), then a retry with other settings that fails before its first checkpoint (the crash's
    # checkpoint still there, the run file now naming the retry's run), then S1 again: resuming would reopen the
    # retry's run, whose parameters are the other settings'
    monkeypatch.setattr(tracking.models, "epoch_logger", crashing)
    assert not train({"epochs": 3}, raise_on_error=False).success
    crash_at["epoch"] = 0
    assert not train({"epochs": 2, "lr": 1e-3}, raise_on_error=False).success
    retried = (checkpoints / RUN_ID_FILE).read_text().strip()
    monkeypatch.undo()
    assert train({"epochs": 3}).output_for_node("relabeled_model")["run_id"] != retried
