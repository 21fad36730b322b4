"""The tracking service owns its MLflow client: two stores in one process, nothing process-wide."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from maskops.models import MaskNet, ProbabilityModel
from tracking.service import TrackingService, is_not_found, pinned


def test_two_services_on_two_stores_share_no_state(tmp_path: Path):
    from mlflow.tracking._tracking_service import utils

    before = (utils.is_tracking_uri_set(), os.environ.get("MLFLOW_TRACKING_URI"))
    a = TrackingService(f"sqlite:///{tmp_path / 'a.db'}", artifact_root=str(tmp_path / "a"), experiment="one")
    b = TrackingService(f"sqlite:///{tmp_path / 'b.db'}", artifact_root=str(tmp_path / "b"), experiment="two")
    with a.run("in a", {"where": "a"}) as run_a, b.run("in b", {"where": "b"}) as run_b:  # interleaved, as two assets in one process
        run_a.log_metrics({"m": 1.0})
        run_b.log_metrics({"m": 2.0})
        logged = run_a.log_pytorch_model(ProbabilityModel(MaskNet("resnet10t", "hard")).eval(), np.zeros((2, 3, 32, 32), np.float32),
                                         {"image_size": 32}, pinned("torch"))  # fmt: skip
    assert a.client.get_run(run_a.run_id).data.metrics == {"m": 1.0} and b.client.get_run(run_b.run_id).data.metrics == {"m": 2.0}
    assert [r.info.run_id for r in b.client.search_runs([b.experiment_id()])] == [run_b.run_id]  # nothing leaked into b
    assert a.client.get_run(run_a.run_id).info.status == "FINISHED"
    version = a.register("svc-test", logged, tags={"q": "ok"})
    assert a.version_of("svc-test", logged) == version and b.registered_model_names() == []
    model = a.load_pytorch(f"models:/svc-test/{version}")
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 18)
    assert (utils.is_tracking_uri_set(), os.environ.get("MLFLOW_TRACKING_URI")) == before  # no process-wide URI was set


def test_a_failing_block_marks_the_run_failed(tmp_path: Path):
    service = TrackingService(f"sqlite:///{tmp_path / 'm.db'}", artifact_root=str(tmp_path / "art"))
    with pytest.raises(RuntimeError), service.run("doomed", {}) as run:
        raise RuntimeError("training crashed")
    assert service.client.get_run(run.run_id).info.status == "FAILED"


def test_unknown_models_are_reported_as_not_found(tmp_path: Path):
    from mlflow.exceptions import MlflowException

    service = TrackingService(f"sqlite:///{tmp_path / 'm.db'}")
    with pytest.raises(MlflowException) as missing:
        service.download("models:/nothing-here/1", tmp_path / "dl")
    assert is_not_found(missing.value)
    assert not is_not_found(MlflowException("database is locked"))
