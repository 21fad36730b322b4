"""The production profile, proven on this machine: Dagster on PostgreSQL with the queued run coordinator and the
daemon, steps on two Celery workers (RabbitMQ broker, Redis results), an MLflow tracking server on PostgreSQL with
its artifacts proxied to an S3-compatible store (moto), the image store and manifests on that store — all started
with the commands of docker/compose.yaml. `make test-production` runs this file alone; `make test` runs it with
the rest of the suite."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from maskops.settings import Settings
from maskops.variants import VARIANTS
from resources.execution import celery_config
from tests.production import (
    MASKOPS,
    Stack,
    answers,
    database,
    free_port,
    listening,
    logged,
    moto_command,
    rabbitmq_vhost,
    require_services,
    unique,
)
from tests.servers import session_commands

pytestmark = [pytest.mark.slow, pytest.mark.production]
RAW_EPOCHS = 12
TINY_MODEL = {"preset": "scratch", "epochs": 1, "image_size": 32, "batch_size": 16, "gradcam_images": 4}


def run_config(settings: Settings, data_stages: bool = True, **model_overrides: dict) -> dict:
    ops = {f"{v}_crops": {"config": {"background_model": "u2net_custom", "size": 64}} for v in (*VARIANTS, "eval")} if data_stages else {}
    ops |= {f"{v}_model": {"config": {**TINY_MODEL, **model_overrides.get(v, {})}} for v in VARIANTS}
    ops |= {f"{v}_model_model_quality": {"config": {"min_val_macro_f1": 0.0}} for v in VARIANTS}
    if data_stages:
        ops |= {
            "profile_split": {"config": {"n_folds": 3}},
            "label_issues": {"config": {"method": "train", "image_size": 32, "epochs": 1, "sheet": 4}},
        }
    return {"ops": ops, "execution": {"config": celery_config(settings)}}


def launch(stack: Stack, job: str, config: dict, workspace: Path) -> str:
    path = stack.logs / f"{job}.run.json"
    path.write_text(json.dumps(config))
    done = subprocess.run([str(Path(sys.executable).with_name("dagster")), "job", "launch", "-w", str(workspace), "-j", job, "-c", str(path)],
                          env=stack.env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    instance = dg.DagsterInstance.get()
    (run,) = instance.get_runs(dg.RunsFilter(job_name=job), limit=1)
    return run.run_id


def wait_for(run_id: str, stack: Stack, timeout: float = 420) -> dg.DagsterRun:
    instance = dg.DagsterInstance.get()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run.is_finished:
            return run
        time.sleep(2)
    logs = "\n".join(f"--- {p.name}\n{p.tail(1500)}" for p in stack.processes)
    pytest.fail(f"run {run_id} did not finish in {timeout} s:\n{logs}")


def workers_by_step(run_id: str) -> dict[str, list[str]]:
    """Step key -> the Celery workers that picked it up, in order (from the run's engine events)."""
    found: dict[str, list[str]] = {}
    for record in dg.DagsterInstance.get().all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = record.dagster_event.engine_event_data
        worker = data.metadata.get("Celery worker") if data else None
        if worker is not None:
            found.setdefault(record.step_key, []).append(worker.value)
    return found


@pytest.fixture
def production(tiny_dataset: Path, models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    require_services()
    import boto3

    with contextlib.ExitStack() as cleanup:
        dagster_db = cleanup.enter_context(database(unique("maskops_dagster")))
        mlflow_db = cleanup.enter_context(database(unique("maskops_mlflow")))
        broker = cleanup.enter_context(rabbitmq_vhost(unique("maskops")))
        home, bucket = tmp_path / "home", unique("maskops").replace("_", "-")
        (home / "models").mkdir(parents=True)
        shutil.copy(models_dir / "tiny_segmenter.onnx", home / "models")
        ports = {name: free_port() for name in ("s3", "mlflow", "code", "web")}
        env = {
            "MASKOPS_PROFILE": "production", "MASKOPS_HOME": str(home), "MASKOPS_DATASET": str(tiny_dataset),
            "MASKOPS_BACKGROUND_MODEL": str(home / "models/tiny_segmenter.onnx"), "DAGSTER_HOME": str(home / "dagster"),
            "MASKOPS_DAGSTER_POSTGRES_URL": dagster_db, "MASKOPS_CELERY_BROKER": broker, "MASKOPS_CELERY_BACKEND": "redis://127.0.0.1:6379/13",
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports['mlflow']}", "MASKOPS_MLFLOW_BACKEND_STORE": mlflow_db,
            "MASKOPS_MLFLOW_ARTIFACTS": f"s3://{bucket}/mlartifacts", "MASKOPS_OBJECT_STORE": f"s3://{bucket}/maskops",
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{ports['s3']}", "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{ports['s3']}",
            "MASKOPS_GPU_SLOTS": "1", "MASKOPS_IMAGE_MODEL_SLOTS": "2",
        }  # fmt: skip
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        stack = Stack(tmp_path, {**os.environ, **env})
        cleanup.callback(stack.stop)
        # Started in waves, each wave's processes together (their start is mostly importing packages), each wave
        # once what it needs is up: the tracking server with the instance's set-up, then the workers and the code
        # server, then what talks to the code server.
        stack.start("s3", moto_command(ports["s3"]), listening(ports["s3"]))
        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"]).create_bucket(Bucket=bucket)
        tracking = stack.spawn("tracking-server", [*MASKOPS, "tracking-server", "--port", str(ports["mlflow"]), "--workers", "1"],
                               answers(f"{env['MLFLOW_TRACKING_URI']}/health"))  # fmt: skip
        initialized = subprocess.run([*MASKOPS, "init-instance"], env=stack.env, capture_output=True, text=True, timeout=180)
        assert initialized.returncode == 0, initialized.stderr[-3000:]
        code = f"127.0.0.1:{ports['code']}"
        workers = [stack.spawn(name, [*MASKOPS, "worker", "--name", f"{name}@%h"], logged(tmp_path / f"{name}.log", "ready."))
                   for name in ("worker-1", "worker-2")]  # fmt: skip
        code_server = stack.spawn("code-server", [*MASKOPS, "code-server", "--port", str(ports["code"])], listening(ports["code"]))
        stack.wait(code_server)
        webserver = stack.spawn("webserver", [*MASKOPS, "webserver", "--port", str(ports["web"]), "--code-server", code],
                                answers(f"http://127.0.0.1:{ports['web']}/server_info"))  # fmt: skip
        daemon = stack.spawn(
            "daemon", [*MASKOPS, "daemon", "--code-server", code], logged(tmp_path / "daemon.log", "QueuedRunCoordinatorDaemon")
        )
        stack.wait(tracking, *workers, webserver, daemon)
        yield (
            stack,
            Settings.from_env(),
            home / "dagster/workspace.yaml",
            bucket,
            workers,
            boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"]),
        )


def test_the_production_profile_end_to_end(production, tiny_dataset: Path, tmp_path: Path):
    import psycopg2

    from tracking.service import TrackingService

    stack, settings, workspace, bucket, workers, s3 = production
    # raw_model trains long enough to lose its worker in the middle of the step (an epoch takes ~2 s here; the worker
    # dies within a poll of the first checkpoint, and the resumed step trains the rest, every other model waiting for it)
    run_id = launch(stack, "maskops_pipeline", run_config(settings, raw={"epochs": RAW_EPOCHS, "patience": RAW_EPOCHS}), workspace)
    deadline = time.monotonic() + 300
    while not (first := workers_by_step(run_id).get("raw_model")):
        assert time.monotonic() < deadline and not dg.DagsterInstance.get().get_run_by_id(run_id).is_finished, "raw_model never started"
        time.sleep(1)
    checkpoint = settings.checkpoints / "raw" / "last.pt"
    while not checkpoint.exists():  # an epoch or more in (a fixed sleep was too short on a busy machine)
        assert time.monotonic() < deadline and not dg.DagsterInstance.get().get_run_by_id(run_id).is_finished, "no checkpoint written"
        time.sleep(0.2)
    victim = next(w for w in workers if first[0].startswith(w.name + "@"))
    victim.kill()
    run = wait_for(run_id, stack)
    assert run.status == dg.DagsterRunStatus.SUCCESS, [p.tail(2000) for p in stack.processes if p.name.startswith("worker")]

    # steps ran on both workers, checks included; the events are in PostgreSQL
    placed = workers_by_step(run_id)
    assert {"relabeled_model", "relabeled_model_model_quality", "raw_dataset_labels_contract", "ensemble"} <= set(placed)
    assert {w.split("@")[0] for ws in placed.values() for w in ws} == {"worker-1", "worker-2"}
    with (
        contextlib.closing(psycopg2.connect(settings.services.dagster_postgres_url.replace("+psycopg2", ""))) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute("select count(*) from event_logs where run_id = %s", (run_id,))
        assert cursor.fetchone()[0] > 100

    # the killed worker's step went back to the broker, ran on the other worker and resumed from its checkpoint;
    # what the dead worker half did is not what got registered
    assert len(placed["raw_model"]) == 2 and placed["raw_model"][0] != placed["raw_model"][1]
    meta = dg.DagsterInstance.get().fetch_materializations(dg.AssetKey("raw_model"), limit=1).records[0].asset_materialization.metadata
    assert meta["epochs_run"].value <= RAW_EPOCHS and meta.get("resumed_from_epoch") is not None
    service = TrackingService(settings.mlflow_uri)
    record = json.loads(s3.get_object(Bucket=bucket, Key="maskops/records/raw_model.json")["Body"].read())
    assert [v.run_id for v in service.client.search_model_versions("name = 'maskops-raw'")] == [record["run_id"]]

    # models and the ensemble on the tracking server; images, manifests and artifacts in the object store
    assert all(service.client.search_model_versions(f"name = 'maskops-{v}'") for v in VARIANTS)
    assert "champion" in service.client.get_registered_model("maskops-ensemble").aliases
    stored = {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in page.get("Contents", [])}
    assert any(k.startswith("maskops/images/") and k.endswith(".jpg") for k in stored)
    assert "maskops/manifests/raw_dataset.parquet" in stored and "maskops/records/ensemble.json" in stored
    assert any(k.startswith("mlartifacts/") for k in stored)  # proxied by the server: clients never touch S3 for MLflow
    assert not (settings.home / "images").exists() and not (settings.home / "mlartifacts").exists()
    tracking = next(p for p in stack.processes if p.name == "tracking-server")  # and it runs no GenAI job runner (huey)
    commands = session_commands(tracking.popen.pid)
    assert not [c for c in commands if "huey" in c], commands

    # a laptop's `maskops predict` and `maskops serve` need only the server's URI
    laptop = {k: v for k, v in stack.env.items() if not k.startswith(("AWS_", "MLFLOW_S3", "MASKOPS_"))}
    laptop["MASKOPS_HOME"] = str(tmp_path / "laptop")
    photos = sorted((tiny_dataset / "train/images").iterdir())[0]
    predicted = subprocess.run([*MASKOPS, "predict", str(photos), "--model", "models:/maskops-ensemble@champion", "--out", str(tmp_path / "p.csv")],
                               env=laptop, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    table = pd.read_csv(tmp_path / "p.csv")
    assert len(table) == 7 and (table["status"] == "ok").all() and table["class_id"].between(0, 17).all()
    port = free_port()
    laptop_stack = Stack(tmp_path, laptop)
    try:
        laptop_stack.start("serve", [*MASKOPS, "serve", "--port", str(port)], answers(f"http://127.0.0.1:{port}/ping"), timeout=240)
        photo = base64.b64encode(next(photos.iterdir()).read_bytes()).decode()  # image bytes: the server reads no paths by default
        body = json.dumps({"dataframe_split": {"columns": ["image"], "data": [[photo]]}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            assert json.load(response)["predictions"][0]["status"] == "ok"
    finally:
        laptop_stack.stop()
