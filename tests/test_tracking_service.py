"""The tracking service owns its MLflow client: two stores in one process, nothing process-wide."""

from __future__ import annotations

import json
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


# -- what a person sees in MLflow's UI: the runs, the same numbers as Dagster, links both ways, described models --------


def test_the_experiment_is_marked_as_model_training_with_a_metrics_view(tmp_path: Path):
    from tracking.service import EXPERIMENT_KIND_TAG, MODEL_TRAINING, RUNS_VIEW_TAG

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    service = TrackingService(uri, artifact_root=str(tmp_path / "art"))
    assert service.client.get_experiment(service.experiment_id()).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING
    old = service.client.create_experiment("made-before-the-tag")  # an existing store: tagged when first opened
    assert EXPERIMENT_KIND_TAG not in service.client.get_experiment(old).tags
    TrackingService(uri, experiment="made-before-the-tag").experiment_id()
    assert service.client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING
    # the shared runs view the experiment link opens: the saved-view form MLflow's UI reads, validation metrics as columns
    view = json.loads(service.client.get_experiment(old).tags[RUNS_VIEW_TAG])
    assert view["name"] and isinstance(view["createdAt"], int)
    columns = json.loads(view["state"])["selectedColumns"]
    assert "metrics.`val_macro_f1`" in columns and "params.`variant`" in columns and "attributes.`Models`" in columns


def test_links_go_to_the_mlflow_ui_and_runs_link_back_to_dagster(tmp_path: Path):
    from tracking.service import ui_url_for

    service = TrackingService(f"sqlite:///{tmp_path / 'm.db'}", artifact_root=str(tmp_path / "art"))
    tags = {"dagster.run_id": "0123456789abcdef", "dagster.asset_key": "relabeled_model"}
    with service.run("relabeled_model", tags) as run:
        pass
    assert (
        run.link == f"http://127.0.0.1:5000/#/experiments/{run.experiment_id}/runs/{run.run_id}?workflowType=machine_learning"
    )  # `maskops mlflow-ui`'s address
    assert service.version_link("maskops-raw", "3") == "http://127.0.0.1:5000/#/models/maskops-raw/versions/3"
    saved = service.client.get_run(run.run_id).data.tags
    assert saved["dagster.run_url"] == "http://127.0.0.1:3000/runs/0123456789abcdef" == service.dagster_run_link(run.run_id)
    assert saved["mlflow.note.content"] == (
        "Made by Dagster run [01234567](http://127.0.0.1:3000/runs/0123456789abcdef) "
        "materializing asset [relabeled_model](http://127.0.0.1:3000/assets/relabeled_model)."
    )
    with service.run("by hand", {}) as manual:  # not made by Dagster: nothing to link back to
        pass
    assert "dagster.run_url" not in service.client.get_run(manual.run_id).data.tags
    assert ui_url_for("http://mlflow:5000/") == "http://mlflow:5000"  # a tracking server serves its own UI
    assert ui_url_for("sqlite:///x.db", "http://ui.example:8080/") == "http://ui.example:8080"
    assert ui_url_for("postgresql://db/mlflow") == ""  # no UI known: links say where the run is instead
    service.ui_url = ""  # as for a database no UI is known for
    assert service.run_link("1", "abc").startswith("runs:/abc in sqlite:") and service.version_link("m", "1") == "models:/m/1"


def test_resource_links_are_urls(tmp_path: Path):
    from resources import MlflowTracking

    tracking = MlflowTracking(tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")
    link = tracking.version_link("maskops-ensemble", "2")
    assert link.value == "http://127.0.0.1:5000/#/models/maskops-ensemble/versions/2" and type(link).__name__ == "UrlMetadataValue"
    assert type(MlflowTracking(tracking_uri="postgresql://db/m").version_link("m", "1")).__name__ == "TextMetadataValue"


def test_val_metrics_are_the_best_epochs_as_in_dagster_and_epochs_are_a_series(tmp_path: Path):
    from maskops.evaluation import evaluate_model
    from maskops.train import TrainConfig, train_model
    from tracking.models import epoch_logger, log_trained_model

    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 255, (36, 3, 32, 32), dtype=np.uint8))
    labels = np.arange(36) % 18
    cfg = TrainConfig(backbone="resnet10t", image_size=32, epochs=3, batch_size=12, device="cpu")
    service = TrackingService(f"sqlite:///{tmp_path / 'm.db'}", artifact_root=str(tmp_path / "art"))
    with service.run("raw_model", {}) as run:
        result = train_model(images, labels, images[:18], labels[:18], cfg, None, epoch_logger(run, lambda line: None))
        log_trained_model(run, cfg, result, evaluate_model(result, images[:18], labels[:18], "raw_model", 2), "{}")
    metrics = service.client.get_run(run.run_id).data.metrics
    series = [m.value for m in service.client.get_metric_history(run.run_id, "epoch_val_macro_f1")]
    assert len(series) == 3 and len(service.client.get_metric_history(run.run_id, "val_macro_f1")) == 1
    # the number the model asset shows in Dagster (result.val_metrics), its best epoch's, not the last epoch's
    assert metrics["val_macro_f1"] == pytest.approx(result.val_metrics["macro_f1"]) == pytest.approx(series[result.best_epoch])
    assert metrics["best_epoch"] == result.best_epoch and "best_val_macro_f1" not in metrics


def test_registered_models_and_versions_are_described(tmp_path: Path):
    from tracking.models import register_passing

    service = TrackingService(f"sqlite:///{tmp_path / 'm.db'}", artifact_root=str(tmp_path / "art"))
    with service.run("cleaned_model", {"dagster.run_id": "feedc0de" * 4, "dagster.asset_key": "cleaned_model"}) as run:
        logged = run.log_pytorch_model(ProbabilityModel(MaskNet("resnet10t", "hard")).eval(), np.zeros((2, 3, 32, 32), np.float32),
                                       {"image_size": 32}, pinned("torch"))  # fmt: skip
    version = register_passing(service, "cleaned", logged, {"val_macro_f1": 0.41567, "floor": 0.1, "non_finite_tensors": []})
    model = service.client.get_registered_model("maskops-cleaned")
    assert "**cleaned** dataset variant" in model.description and "model_quality" in model.description
    described = service.client.get_model_version("maskops-cleaned", version).description
    assert "cleaned variant: validation macro F1 0.4157 (floor 0.1)" in described and run.run_id in described
    assert f"[feedc0de](http://127.0.0.1:3000/runs/{'feedc0de' * 4})" in described


def test_the_promotion_decision_is_short_tags_and_a_sentence(tmp_path: Path):
    from tracking.registry import DECISION_TAG, PROMOTION_TAG, promote

    service = TrackingService(f"sqlite:///{tmp_path / 'm.db'}")
    client, name = service.client, "promotion-words"
    client.create_registered_model(name)
    first, second = (client.create_model_version(name, source=f"file:///nowhere/{i}", description="soft vote").version for i in range(2))
    promote(client, name, first, 0.50, "val")
    kept = promote(client, name, second, 0.40, "val", margin=0.05)
    tags, described = client.get_model_version(name, second).tags, client.get_model_version(name, second).description
    assert tags[DECISION_TAG] == "not promoted" and tags[PROMOTION_TAG] == "0.4000 vs champion v1 0.5000"
    assert client.get_model_version(name, first).tags[DECISION_TAG] == "promoted"
    assert described.startswith("soft vote\n\nPromotion: v2 is the **challenger**") and "kept the champion" in described
    assert all(len(v) <= 60 for k, v in tags.items() if k in (DECISION_TAG, PROMOTION_TAG)) and kept.decision == "challenger"
    promote(client, name, second, 0.40, "val", margin=0.05)  # decided again: the sentence is replaced, not repeated
    assert client.get_model_version(name, second).description.count("Promotion:") == 1


# -- kill -9: a run whose process died is closed as KILLED, and a resumed training continues in the same run -------------

DIES_MID_TRAINING = """
import os, signal, sys
from tracking.service import TrackingService
service = TrackingService(sys.argv[1], artifact_root=sys.argv[2])
with service.run("raw_model", {"dagster.run_id": "dead-dagster-run", "dagster.asset_key": "raw_model"}) as run:
    for epoch in range(2):
        run.log_metrics({"epoch_val_macro_f1": 0.1 * epoch}, step=epoch)
    print(run.run_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_run(uri: str, artifacts: Path) -> str:
    """The id of a run whose process was killed (kill -9) after logging two epochs."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", DIES_MID_TRAINING, uri, str(artifacts)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parents[1])  # fmt: skip
    assert done.returncode == -9, done.stderr
    return done.stdout.split()[0]


def test_runs_of_dead_dagster_runs_are_closed_as_killed(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    service = TrackingService(uri, artifact_root=str(tmp_path / "art"))
    service.experiment_id()
    dead = killed_run(uri, tmp_path / "art")
    assert service.client.get_run(dead).info.status == "RUNNING"  # nobody will ever end it
    live = service.client.create_run(service.experiment_id(), tags={"dagster.run_id": "live", "dagster.asset_key": "raw_model"})
    other = service.client.create_run(service.experiment_id(), tags={"dagster.run_id": "gone", "dagster.asset_key": "cleaned_model"})
    untagged = service.client.create_run(service.experiment_id(), tags={"dagster.asset_key": "raw_model"})
    assert service.close_abandoned_runs("raw_model", ["live"]) == [dead]
    closed = service.client.get_run(dead)
    assert closed.info.status == "KILLED" and closed.info.end_time >= closed.info.start_time
    assert "dead-dagster-run" in closed.data.tags["maskops.abandoned"]
    assert [service.client.get_run(r.info.run_id).info.status for r in (live, other, untagged)] == ["RUNNING"] * 3
    assert service.close_abandoned_runs("raw_model", ["live"]) == []  # once


def test_a_resumed_training_logs_its_remaining_epochs_into_the_killed_run(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    service = TrackingService(uri, artifact_root=str(tmp_path / "art"))
    service.experiment_id()
    dead = killed_run(uri, tmp_path / "art")
    service.close_abandoned_runs("raw_model", [])  # what the model asset does first: the dead run is KILLED ...
    with service.run("raw_model", {"dagster.run_id": "second", "dagster.asset_key": "raw_model"}, resume_run_id=dead) as run:
        assert service.client.get_run(dead).info.status == "RUNNING"
        run.log_metrics({"epoch_val_macro_f1": 0.3}, step=2)  # ... and then reopened by the resumed training
    resumed = service.client.get_run(dead)
    assert run.run_id == dead and resumed.info.status == "FINISHED"
    assert [m.step for m in service.client.get_metric_history(dead, "epoch_val_macro_f1")] == [0, 1, 2]
    assert resumed.data.tags["dagster.run_id"] == "second" and resumed.data.tags["maskops.resumed"] == "1"
    assert resumed.data.tags["dagster.run_url"].endswith("/runs/second")
    assert len(service.client.search_runs([service.experiment_id()])) == 1
    with service.run("raw_model", {}, resume_run_id="0" * 32) as fresh:  # a run this store does not have: a new run
        pass
    assert fresh.run_id != dead and service.client.get_run(fresh.run_id).info.status == "FINISHED"


def test_a_logged_model_is_read_back_from_its_weights_as_its_graph_would_answer(tmp_path: Path):
    """log_pytorch_model writes the module's weights next to its pt2 graph when the metadata names the architecture;
    load_pytorch rebuilds the module from them (what the quality check, the ensemble and predict load), answering
    like the graph, and a non-finite weight is still there to be found."""
    import mlflow.pytorch

    from maskops.models import WEIGHTS_FILE, MaskNet, ProbabilityModel, load_weights
    from tracking.models import model_faults

    service = TrackingService(f"sqlite:///{tmp_path / 'm.db'}", artifact_root=str(tmp_path / "art"))
    architecture = {"backbone": "resnet10t", "head": "hard"}
    torch.manual_seed(0)
    good, broken = ProbabilityModel(MaskNet("resnet10t", "hard")).eval(), ProbabilityModel(MaskNet("resnet10t", "hard")).eval()
    with torch.no_grad():
        broken.net.heads["age"].weight[0, 0] = float("nan")
    reshaped = ProbabilityModel(MaskNet("resnet10t", "hard")).eval()  # same tensors, another network (as when a layer
    reshaped.net.backbones[0].act1 = torch.nn.Tanh()  # was swapped for training): never rebuilt from its weights
    uris = []
    with service.run("weights", {}) as run:
        for model in (good, broken, reshaped):
            metadata = {"image_size": 32, "architecture": architecture}
            uris.append(run.log_pytorch_model(model, np.zeros((2, 3, 32, 32), np.float32), metadata, pinned("torch")).uri)
    local = service.download(uris[0], tmp_path / "good")
    assert (local / WEIGHTS_FILE).is_file()
    back, graph = service.load_pytorch(uris[0]), mlflow.pytorch.load_model(str(local), map_location="cpu")
    assert isinstance(back, ProbabilityModel) and not back.training
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(back(x), graph(x))
    assert model_faults(service.load_pytorch(uris[1])) == ["net.heads.age.weight"]
    assert not (service.download(uris[2], tmp_path / "reshaped") / WEIGHTS_FILE).exists()
    with torch.no_grad():
        torch.testing.assert_close(service.load_pytorch(uris[2])(x), reshaped(x))  # served from its graph, as trained
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(tmp_path / "bare.safetensors"))
    with pytest.raises(ValueError, match="does not name its architecture"):
        load_weights(tmp_path / "bare.safetensors")


@pytest.mark.parametrize("head", ["multiclass", "hard", "soft"])
def test_every_heads_pt2_graph_loads_without_maskops(tmp_path: Path, head: str):
    """What a consumer without maskops' code does with a registered model: mlflow.pytorch.load_model on its pt2 graph.
    A multiclass head named "class" (a Python keyword) made torch.export's generated module a SyntaxError: every demo
    model's graph was unloadable while maskops itself read the weights and never noticed."""
    import mlflow.pytorch

    service = TrackingService(f"sqlite:///{tmp_path / 'm.db'}", artifact_root=str(tmp_path / "art"))
    torch.manual_seed(0)
    model = ProbabilityModel(MaskNet("resnet10t", head)).eval()
    with service.run("graph", {}) as run:
        uri = run.log_pytorch_model(model, np.zeros((2, 3, 32, 32), np.float32), {"image_size": 32}, pinned("torch")).uri
    graph = mlflow.pytorch.load_model(str(service.download(uri, tmp_path / "graph")), map_location="cpu")
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(graph(x), model(x))


class _Scaled(torch.nn.Module):
    """A forward that depends on a plain tensor attribute, which is no parameter or buffer (torch.export lifts it as
    a constant): two instances with equal weights answer differently."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.conv, self.scale = torch.nn.Conv2d(3, 4, 3), torch.tensor(scale)

    def forward(self, x):
        return self.conv(x).mean((2, 3)) * self.scale


def test_members_of_one_architecture_share_one_trace_and_each_graph_answers_with_its_own_weights(tmp_path: Path, monkeypatch):
    """log_pytorch_model traces a module once per architecture and input shape (torch.export: 1-4 s a member of the
    demo) and gives the next member of that shape the trace with its own weights and buffers; what MLflow users load
    from each graph answers like that member, and a module whose forward reads more than its state is traced afresh."""
    from collections import OrderedDict

    import mlflow.pytorch

    import tracking.graphs

    traced = []
    real_export = torch.export.export

    def counting_export(mod, *args, **kwargs):
        traced.append(type(mod).__name__)
        return real_export(mod, *args, **kwargs)

    monkeypatch.setattr(torch.export, "export", counting_export)
    monkeypatch.setattr(tracking.graphs, "_TRACED", OrderedDict())  # a fresh process's cache
    service = TrackingService(f"sqlite:///{tmp_path / 'm.db'}", artifact_root=str(tmp_path / "art"))
    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        model = ProbabilityModel(MaskNet("resnet10t", "hard")).eval()
        with torch.no_grad():  # trained batch-norm statistics differ from member to member too
            for buffer in model.buffers():
                if buffer.is_floating_point():
                    buffer.add_(torch.rand_like(buffer) * (seed + 1))
        members.append((model, (2, 3, 32, 32)))
    members.append((members[0][0], (2, 3, 48, 48)))  # another input size: another trace
    members += [(_Scaled(2.0).eval(), (2, 3, 16, 16)), (_Scaled(-3.0).eval(), (2, 3, 16, 16))]
    members[-1][0].conv.load_state_dict(members[-2][0].conv.state_dict())  # equal weights, another constant
    with service.run("members", {}) as run:
        uris = [run.log_pytorch_model(m, np.zeros(shape, np.float32), {}, pinned("torch")).uri for m, shape in members]
    assert traced == ["ProbabilityModel", "ProbabilityModel", "_Scaled", "_Scaled"]  # members 2 and 3 re-used the first's
    for k, ((model, shape), uri) in enumerate(zip(members, uris, strict=True)):
        graph = mlflow.pytorch.load_model(str(service.download(uri, tmp_path / f"graph{k}")), map_location="cpu")
        x = torch.rand(3, *shape[1:])  # a batch size the example did not have: still dynamic
        with torch.no_grad():
            torch.testing.assert_close(graph(x), model(x))
    with torch.no_grad():
        x = torch.rand(3, 3, 32, 32)
        assert not torch.allclose(members[0][0](x), members[1][0](x))  # the members differ: the test can tell them apart
