"""The maskops command line, run as a user would (a real subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MASKOPS = [sys.executable, "-m", "maskops.cli"]


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*MASKOPS, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)


def test_synth_then_scan(tmp_path: Path):
    out = tmp_path / "people"
    made = run("synth", "--profiles", "2", "--eval-profiles", "1", "--seed", "4", "--out", str(out), "--workers", "1")
    assert made.returncode == 0, made.stderr
    assert "14 training images, 7 evaluation images" in made.stdout
    scanned = run("scan", str(out))
    assert scanned.returncode == 0, scanned.stderr
    assert "2 profiles, 14 training images, 7 evaluation images, 0 quarantined" in scanned.stdout


def test_scan_reports_problems_and_exits_2(dataset_copy: Path):
    (dataset_copy / "train/train.csv").unlink()
    scanned = run("scan", str(dataset_copy))
    assert scanned.returncode == 2
    assert "train/train.csv: file is missing" in scanned.stderr and "fix:" in scanned.stderr


def test_synth_refuses_to_overwrite(tiny_dataset: Path):
    made = run("synth", "--profiles", "3", "--out", str(tiny_dataset))
    assert made.returncode == 2 and "--force" in made.stderr


def test_where_follows_the_environment(tmp_path: Path):
    shown = run("where", env={"MASKOPS_HOME": str(tmp_path / "state")})
    assert f"dagster_home {tmp_path / 'state' / 'dagster'}" in shown.stdout
    assert f"dataset      {tmp_path / 'state' / 'demo-data'}" in shown.stdout
