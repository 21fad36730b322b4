"""The production profile on this machine: the services it needs (PostgreSQL, RabbitMQ, Redis — already running
here), an S3-compatible endpoint (moto), and maskops' own processes started with the same commands the compose
file runs. Everything started is stopped by process group, and the databases and the RabbitMQ vhost are dropped,
also when a test fails."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers import free_port

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
RABBITMQ = ("127.0.0.1", 5672)
REDIS = ("127.0.0.1", 6379)
MASKOPS = [sys.executable, "-m", "apps.cli"]


def require_services() -> None:
    """Fail — never skip — with what to start when a service the profile needs is not there."""
    missing = []
    for name, (host, port), how in (
        ("PostgreSQL", ("127.0.0.1", 5432), "apt-get install postgresql; pg_ctlcluster 15 main start (trust auth for 127.0.0.1)"),
        ("RabbitMQ", RABBITMQ, "apt-get install rabbitmq-server; rabbitmq-server -detached"),
        ("Redis", REDIS, "apt-get install redis-server; redis-server --daemonize yes --bind 127.0.0.1"),
    ):
        with socket.socket() as s:
            s.settimeout(2)
            if s.connect_ex((host, port)) != 0:
                missing.append(f"{name} on {host}:{port} ({how})")
    for tool, how in (
        ("rabbitmqctl", "apt-get install rabbitmq-server"),
        ("moto_server", "pip install 'moto[server]' (make test installs it)"),
    ):
        if not shutil.which(tool) and not Path(sys.executable).with_name(tool).exists():
            missing.append(f"the {tool} command ({how})")
    if missing:
        pytest.fail("the production profile's test needs:\n  " + "\n  ".join(missing))


def _sql(statement: str) -> None:
    import psycopg2

    connection = psycopg2.connect(f"{POSTGRES}/postgres")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


@contextlib.contextmanager
def database(name: str) -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards (connections and all)."""
    _sql(f'CREATE DATABASE "{name}"')
    try:
        # the driver named: SQLAlchemy 2.1 (MLflow, Dagster) would otherwise look for psycopg 3
        yield f"{POSTGRES}/{name}".replace("postgresql://", "postgresql+psycopg2://")
    finally:
        _sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def rabbitmq_vhost(name: str) -> Iterator[str]:
    """A RabbitMQ virtual host of our own, so queues of parallel test runs never mix; deleted afterwards."""
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, capture_output=True, timeout=60)
    try:
        subprocess.run(
            ["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"], check=True, capture_output=True, timeout=60
        )
        yield f"amqp://guest:guest@{RABBITMQ[0]}:{RABBITMQ[1]}/{name}"
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], check=False, capture_output=True, timeout=60)


@dataclass
class Process:
    name: str
    command: list[str]
    popen: subprocess.Popen
    log: Path
    ready: Callable[[], bool] = lambda: True

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)


@dataclass
class Stack:
    """Processes started for one test, each in its own process group."""

    logs: Path
    env: dict[str, str]
    processes: list[Process] = field(default_factory=list)

    def start(self, name: str, cmd: list[str], ready: Callable[[], bool], timeout: float = 180) -> Process:
        """Start `cmd` and wait until `ready()`."""
        process = self.spawn(name, cmd, ready)
        self.wait(process, timeout=timeout)
        return process

    def spawn(self, name: str, cmd: list[str], ready: Callable[[], bool]) -> Process:
        """Start `cmd` without waiting for it (`wait` does): processes that need nothing of each other come up together."""
        log = self.logs / f"{name}.log"
        with log.open("w") as out:
            popen = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        process = Process(name, cmd, popen, log, ready)
        self.processes.append(process)
        return process

    def wait(self, *processes: Process, timeout: float = 180) -> None:
        """Until every one of `processes` is ready; a test failure with its log when one exits or the time is up."""
        deadline = time.monotonic() + timeout
        for process in processes:
            while not process.ready():
                if process.popen.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{process.name} did not come up ({' '.join(process.command[-6:])}):\n{process.tail()}")
                time.sleep(0.5)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.kill(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in reversed(self.processes):
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            process.kill(signal.SIGKILL)
            process.popen.wait(timeout=10)


def answers(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        import urllib.request

        try:
            urllib.request.urlopen(url, timeout=2)
            return True
        except OSError:
            return False

    return ready


def listening(port: int) -> Callable[[], bool]:
    def ready() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    return ready


def logged(path: Path, text: str) -> Callable[[], bool]:
    return lambda: path.exists() and text in path.read_text(errors="replace")


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def moto_command(port: int) -> list[str]:
    local = Path(sys.executable).with_name("moto_server")
    return [str(local) if local.exists() else "moto_server", "-H", "127.0.0.1", "-p", str(port)]


__all__ = [
    "MASKOPS",
    "Stack",
    "answers",
    "database",
    "free_port",
    "listening",
    "logged",
    "moto_command",
    "rabbitmq_vhost",
    "require_services",
    "unique",
]
