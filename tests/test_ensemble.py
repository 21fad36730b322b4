"""Soft voting, promotion in a real (temporary) registry, and the ensemble end to end:
assets, submission, the registered pyfunc in a fresh process, and `maskops predict`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from maskops.crop import CropConfig
from maskops.ensemble import fit_weights, soft_vote
from maskops.layout import scan_competition
from maskops.splits import split_profiles


def test_soft_vote_averages_probabilities_not_logits():
    a = np.zeros((2, 18))
    a[0, 1], a[0, 2], a[1, 5] = 0.6, 0.4, 1.0
    b = np.zeros((2, 18))
    b[0, 2], b[1, 5], b[1, 6] = 1.0, 0.5, 0.5
    equal = soft_vote([a, b])
    assert equal[0, 1] == pytest.approx(0.3) and equal[0, 2] == pytest.approx(0.7) and equal.argmax(1).tolist() == [2, 5]
    weighted = soft_vote([a, b], [3, 1])
    assert weighted[0, 1] == pytest.approx(0.45) and weighted[0, 2] == pytest.approx(0.55)
    assert np.allclose(weighted.sum(1), 1)
    with pytest.raises(ValueError, match="one non-negative weight per member"):
        soft_vote([a, b], [1, -1])


def test_fitted_weights_prefer_the_better_member():
    y = np.arange(18).repeat(3)
    good = np.eye(18)[y] * 0.9 + 0.1 / 18
    bad = np.roll(good, 1, axis=1)
    weights, score = fit_weights([bad, good], y, step=0.25)
    assert weights[1] > weights[0] and score == pytest.approx(1.0)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory):
    from resources import MlflowTracking

    root = tmp_path_factory.mktemp("registry")
    tracking = MlflowTracking(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_root=str(root / "artifacts"), experiment="ensemble-test"
    )
    tracking.activate()
    return tracking


def test_promotion_keeps_or_moves_the_champion(registry):
    from mlflow import MlflowClient

    from resources.registry import promote

    client = MlflowClient()
    name = "promotion-test"
    client.create_registered_model(name)
    versions = [client.create_model_version(name, source=f"file:///nowhere/{i}").version for i in range(4)]
    first = promote(client, name, versions[0], 0.50, "val-A")
    assert first.decision == "champion" and client.get_model_version_by_alias(name, "champion").version == versions[0]
    worse = promote(client, name, versions[1], 0.40, "val-A", margin=0.05)
    assert worse.decision == "challenger" and worse.champion_score == pytest.approx(0.50)
    assert client.get_model_version_by_alias(name, "champion").version == versions[0]
    assert client.get_model_version_by_alias(name, "challenger").version == versions[1]
    close = promote(client, name, versions[2], 0.47, "val-A", margin=0.05)  # within the margin
    assert close.decision == "champion" and client.get_model_version_by_alias(name, "champion").version == versions[2]
    rescored = []
    moved = promote(client, name, versions[3], 0.60, "val-B", rescore=lambda tags: rescored.append(tags) or 0.55)
    assert rescored and moved.decision == "champion" and moved.champion_score == pytest.approx(0.55)  # other people: measured again
    recorded = json.loads(client.get_model_version(name, versions[1]).tags["maskops.promotion"])
    assert recorded["decision"] == "challenger" and "kept the champion" in recorded["reason"]


def test_an_equal_score_takes_the_champion_alias(registry):
    from mlflow import MlflowClient

    from resources.registry import promote

    client = MlflowClient()
    client.create_registered_model("tie-test")
    a, b = (client.create_model_version("tie-test", source=f"file:///nowhere/{i}").version for i in range(2))
    promote(client, "tie-test", a, 2 / 3, "val")  # its tag reads 0.666667, above 2/3
    assert promote(client, "tie-test", b, 2 / 3, "val").decision == "champion"


@pytest.fixture(scope="module")
def pipeline_end(tiny_dataset: Path, models_dir: Path, registry, tmp_path_factory: pytest.TempPathFactory):
    """ensemble + submission materialized over stub members (one small untrained model, logged once)."""
    import mlflow
    import torch

    from assets.checks import submission_check
    from assets.ensemble import ensemble, submission
    from maskops.models import MaskNet, ProbabilityModel
    from resources import (
        BackgroundRemoverResource,
        CompetitionDataset,
        DataQuality,
        ImageStoreResource,
        ManifestIOManager,
        RecordIOManager,
        SubmissionStore,
    )

    state = tmp_path_factory.mktemp("ensemble-state")
    registry.activate()
    torch.manual_seed(0)
    with mlflow.start_run(experiment_id=registry.activate()):
        info = mlflow.pytorch.log_model(ProbabilityModel(MaskNet("resnet10t", "hard")).eval(), name="model", input_example=np.zeros((2, 3, 32, 32), np.float32),
                                        serialization_format="pt2", registered_model_name="maskops-test-member")  # fmt: skip
    member_uri = f"models:/maskops-test-member/{info.registered_model_version}"
    layout = scan_competition(tiny_dataset)
    crops = layout.train.assign(crop_path=layout.train["path"], crop_key=layout.train["content_hash"])
    eval_crops = layout.eval.assign(crop_path=layout.eval["path"])
    split = split_profiles(layout.train, n_folds=3, seed=0)
    crop_config = CropConfig(background_model="u2net_custom", size=96).key_params()

    def stub(key, value, io="manifest_io_manager", metadata=None):
        @dg.asset(key=key, io_manager_key=io)
        def _stub() -> dg.MaterializeResult:
            return dg.MaterializeResult(value=value, metadata=metadata or {})

        return _stub

    stubs = [
        stub(["model", v], {"variant": v, "model_uri": member_uri, "image_size": 32}, "record_io_manager")
        for v in ("raw", "relabeled", "cleaned", "generated")
    ]
    stubs += [stub(["cropped", "relabeled"], crops, metadata={"crop_config": dg.MetadataValue.json(crop_config)}),
              stub(["cropped", "eval"], eval_crops), stub("eval_dataset", layout.eval), stub("profile_split", split)]  # fmt: skip
    resources = {
        "dataset": CompetitionDataset(root=str(tiny_dataset)), "image_store": ImageStoreResource(root=str(state / "images")),
        "background_remover": BackgroundRemoverResource(models_dir=str(models_dir), model_path=str(models_dir / "tiny_segmenter.onnx")),
        "mlflow": registry, "submissions": SubmissionStore(folder=str(state / "submissions")),
        "manifest_io_manager": ManifestIOManager(base_path=str(state / "manifests")), "record_io_manager": RecordIOManager(base_path=str(state / "records")),
        "data_quality": DataQuality(gx_project_dir=str(state / "gx"), reports_dir=str(state / "reports"), data_docs=False),
    }  # fmt: skip
    result = dg.materialize([*stubs, ensemble, submission, submission_check], resources=resources, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    return result, state, registry


def test_ensemble_and_submission_assets(pipeline_end, tiny_dataset: Path):
    from mlflow import MlflowClient

    result, state, registry = pipeline_end
    record = result.output_for_node("ensemble")
    assert record["promotion"]["decision"] == "champion" and record["model_uri"].startswith("models:/maskops-ensemble/")
    assert [m["model"] for m in record["member_metrics"]] == ["model/raw", "model/relabeled", "model/cleaned", "model/generated"]
    meta = result.asset_materializations_for_node("ensemble")[0].metadata
    assert meta["comparison"].value.count("\n") == 2 + 4  # header, rule, four members and the ensemble
    assert meta["comparison_chart"].value.startswith("![ensemble vs members](data:image/png")
    assert meta["confusion_matrices"].value.startswith("![confusion matrices: members and ensemble](data:image/png")
    registry.activate()
    run = MlflowClient().get_run(record["run_id"])
    assert {a.path for a in MlflowClient().list_artifacts(run.info.run_id, "evaluation")} >= {
        "evaluation/comparison.csv",
        "evaluation/confusion_matrix.png",
        "evaluation/confusion_matrices.png",
        *(f"evaluation/confusion_model_{v}.csv" for v in ("raw", "relabeled", "cleaned", "generated")),
        "evaluation/confusion_ensemble.csv",
    }
    import mlflow

    folder = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="evaluation", dst_path=str(state / "dl")))
    matrices = {m: pd.read_csv(folder / f"confusion_{m}.csv", index_col=0).to_numpy() for m in ("model_raw", "model_generated", "ensemble")}
    totals = {m.sum() for m in matrices.values()}
    assert len(totals) == 1 and totals.pop() > 0 and matrices["ensemble"].shape == (18, 18)  # the same validation images for all
    assert np.trace(matrices["ensemble"]) / matrices["ensemble"].sum() == pytest.approx(record["val_metrics"]["accuracy"])
    info = pd.read_csv(tiny_dataset / "eval/info.csv")
    written = pd.read_csv(state / "submissions/submission.csv")
    assert list(written["ImageID"]) == list(info["ImageID"]) and written["ans"].between(0, 17).all()
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and check.check_name == "submission_contract"


def _env(registry) -> dict:
    return {**os.environ, "MLFLOW_TRACKING_URI": registry.tracking_uri, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def test_registered_ensemble_round_trip_in_a_fresh_process(pipeline_end, tiny_dataset: Path, tmp_path: Path):
    _, _, registry = pipeline_end
    photos = sorted((tiny_dataset / "train/images").iterdir())[0]
    (tmp_path / "not_an_image.jpg").write_text("hello")
    # The fresh process cannot import the project (no editable-install finder, not run from the
    # repository): the model must bring its own maskops code.
    script = f"""
import sys, importlib.util
sys.meta_path = [f for f in sys.meta_path if not type(f).__module__.startswith("__editable__") and not getattr(f, "__module__", "").startswith("__editable__")]
sys.path = [p for p in sys.path if p not in ("", {str(Path.cwd())!r})]
assert importlib.util.find_spec("maskops") is None, "maskops is still importable"
import mlflow, pandas as pd, json
model = mlflow.pyfunc.load_model("models:/maskops-ensemble@champion")
import maskops
assert "/code/maskops/" in maskops.__file__, maskops.__file__  # the copy bundled with the model
paths = {[str(p) for p in sorted(photos.iterdir())[:3]]!r}
frame = pd.DataFrame({{"image": paths + [open(paths[0], "rb").read(), {str(tmp_path / "not_an_image.jpg")!r}]}})
out = model.predict(frame)
print(json.dumps({{"columns": list(out.columns), "status": list(out["status"]), "sums": out[[f"p_{{i}}" for i in range(18)]].sum(axis=1).round(5).tolist(),
                  "classes": [None if pd.isna(c) else int(c) for c in out["class_id"]]}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=_env(registry), timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["columns"][:5] == ["status", "class_id", "mask", "gender", "age_group"] and len(out["columns"]) == 5 + 18
    assert out["status"][:4] == ["ok"] * 4 and out["status"][4].startswith("unreadable image")
    assert out["sums"][:4] == [1.0] * 4 and out["classes"][0] == out["classes"][3]  # a path and its bytes agree
    assert out["classes"][4] is None


def test_predict_cli_on_good_and_bad_inputs(pipeline_end, tiny_dataset: Path, tmp_path: Path):
    _, _, registry = pipeline_end
    folder = sorted((tiny_dataset / "train/images").iterdir())[1]
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(sorted(folder.iterdir())[0].read_bytes()[:400])
    cli = [sys.executable, "-m", "maskops.cli", "predict"]
    done = subprocess.run(
        [*cli, str(folder), str(bad), str(truncated), "--out", str(tmp_path / "p.csv")],
        capture_output=True, text=True, env=_env(registry), timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]  # partial results: two inputs had no prediction
    table = pd.read_csv(tmp_path / "p.csv")
    assert len(table) == 9 and list(table["path"])[-2:] == [str(bad), str(truncated)]
    assert (table["status"].iloc[:7] == "ok").all() and table["class_id"].iloc[:7].between(0, 17).all()
    assert table["status"].iloc[7].startswith("unreadable image") and table["status"].iloc[8].startswith("unreadable image")
    assert table["class_id"].iloc[7:].isna().all()
    assert "9 predictions written" in done.stdout and "notes.txt" in done.stderr and "truncated.jpg" in done.stderr
    unknown = subprocess.run(
        [*cli, str(folder), "--model", "models:/maskops-ensemble@nonexistent"],
        capture_output=True,
        text=True,
        env=_env(registry),
        timeout=300,
    )
    assert unknown.returncode == 2 and "cannot load models:/maskops-ensemble@nonexistent" in unknown.stderr
    assert "registered models:" in unknown.stderr and "maskops-ensemble" in unknown.stderr
    no_name = subprocess.run(
        [*cli, str(folder), "--model", "models:/no-such-model/1"], capture_output=True, text=True, env=_env(registry), timeout=300
    )
    assert no_name.returncode == 2 and "cannot load models:/no-such-model/1" in no_name.stderr
    (tmp_path / "empty").mkdir()
    empty = subprocess.run([*cli, str(tmp_path / "empty")], capture_output=True, text=True, env=_env(registry), timeout=300)
    assert empty.returncode == 2 and "holds no image files" in empty.stderr


def test_serve_answers_over_http(pipeline_end, tiny_dataset: Path, tmp_path: Path):
    import urllib.request

    from tests.servers import free_port, running

    _, _, registry = pipeline_end
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    photos = [str(p) for p in sorted(sorted((tiny_dataset / "train/images").iterdir())[0].iterdir())[:2]]
    with running(
        [sys.executable, "-m", "maskops.cli", "serve", "--port", str(port)], f"{base}/ping", tmp_path / "serve.log", _env(registry)
    ):
        body = {"dataframe_split": {"columns": ["image"], "data": [[photos[0]], [photos[1]], [str(tmp_path / "missing.jpg")]]}}
        request = urllib.request.Request(
            f"{base}/invocations", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            predictions = json.load(response)["predictions"]
    assert [p["status"] for p in predictions][:2] == ["ok", "ok"] and predictions[2]["status"].startswith("unreadable image")
    assert all(0 <= p["class_id"] < 18 and abs(sum(p[f"p_{i}"] for i in range(18)) - 1) < 1e-6 for p in predictions[:2])
