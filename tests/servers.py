"""Start a real server in a subprocess for a test, wait until it answers, always stop it; find the browser."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

PORTS_PER_WORKER = 200
_ports = itertools.count()


def free_port() -> int:
    """A free port that no other test worker can be handed: each pytest-xdist worker draws from a range of its own,
    below Linux's ephemeral ports (32768 and up), so neither another worker nor the OS gives it out in between."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    base = 21000 + int(worker.removeprefix("gw") or 0) * PORTS_PER_WORKER
    for _ in range(PORTS_PER_WORKER):
        port = base + next(_ports) % PORTS_PER_WORKER
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken by something outside the tests
            return port
    raise RuntimeError(f"no free port in {base}..{base + PORTS_PER_WORKER - 1}")


@contextlib.contextmanager
def running(
    cmd: list[str], ready_url: str, log_path: Path, env: dict, cwd: Path | None = None, timeout: float = 180
) -> Iterator[subprocess.Popen]:
    """Runs `cmd` in its own session until `ready_url` answers; fails the test with the log if it never does. Yields
    the process (its pid is its session's id: `session_commands` lists what it started)."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    urllib.request.urlopen(ready_url, timeout=2)
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"{' '.join(cmd[-4:])} did not come up:\n{log_path.read_text()[-3000:]}")
                    time.sleep(1)
            yield proc
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def session_commands(session: int) -> list[str]:
    """The command lines of the live processes in a session (Linux's /proc), e.g. what a server started."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, pgrp, session, ...
            if int(fields[3]) == session:
                found.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip())
    return found


BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium() -> str:
    for candidate in (os.environ.get("MASKOPS_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail(
        "Chromium is needed for the browser tests: apt-get install chromium (make test does it when it may), or set MASKOPS_CHROMIUM"
    )
