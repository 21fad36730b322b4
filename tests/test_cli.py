"""The maskops command line, run as a user would (a real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

MASKOPS = [sys.executable, "-m", "apps.cli"]


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*MASKOPS, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)


def test_synth_then_scan(tmp_path: Path):
    out = tmp_path / "people"
    made = run(
        "synth", "--profiles", "2", "--eval-profiles", "1", "--seed", "4", "--out", str(out), "--workers", "1", "--mask-only-faces", "1"
    )
    assert made.returncode == 0, made.stderr
    assert "14 training images, 7 evaluation images" in made.stdout and "3 mask-only photos of real faces under mask_only/" in made.stdout
    scanned = run("scan", str(out))
    assert scanned.returncode == 0, scanned.stderr
    assert "2 profiles, 14 training images, 7 evaluation images, 0 quarantined" in scanned.stdout
    assert "mask-only photos: 3 (incorrect 1, not_wear 1, wear 1)" in scanned.stdout


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
    assert "\nthreads      " in shown.stdout and "CPUs usable (affinity and quota" in shown.stdout
    pinned = run("where", env={"MASKOPS_HOME": str(tmp_path / "state"), "MASKOPS_THREADS": "3"})
    assert "threads      3 (MASKOPS_THREADS)" in pinned.stdout


def test_report_lists_the_data_quality_reports(tiny_dataset: Path, tmp_path: Path):
    from expectations import labels
    from maskops.layout import scan_competition
    from maskops.settings import Settings
    from resources import DataQuality

    home = tmp_path / "state"
    empty = run("report", env={"MASKOPS_HOME": str(home)})
    assert empty.returncode == 1 and "no data-quality reports yet" in empty.stdout
    settings = Settings.from_env({"MASKOPS_HOME": str(home)})
    quality = DataQuality(gx_project_dir=str(home / "gx"), reports_dir=str(settings.reports / "quality"), data_docs=False)
    manifest = scan_competition(tiny_dataset).train
    quality.run("labels", "raw_dataset", labels.validations(manifest))
    broken = manifest.assign(mask=manifest["mask"].where(manifest.index != 0, 7))
    quality.run("labels", "relabeled_dataset", labels.validations(broken))
    shown = run("report", env={"MASKOPS_HOME": str(home)})
    assert shown.returncode == 0
    assert "raw_dataset / labels" in shown.stdout and "passed" in shown.stdout
    assert "relabeled_dataset / labels" in shown.stdout and "FAILED 2 of 15" in shown.stdout
    assert "http://127.0.0.1:8070/quality/raw_dataset.labels.html" in shown.stdout  # served by `maskops docs`
    assert "maskops docs" in shown.stdout


def test_scan_prints_every_problem(dataset_copy: Path):
    """An exception's message lists the first 40 problems and points at .problems, which a command line cannot show."""
    for k in range(45):
        (dataset_copy / f"train/images/stray{k:02d}.txt").write_text("x")
    scanned = run("scan", str(dataset_copy))
    assert scanned.returncode == 2 and scanned.stderr.count("holds only profile folders") == 45 and ".problems" not in scanned.stderr


def test_synth_force_replaces_only_a_synthetic_dataset(tmp_path: Path):
    """--force replaces a dataset synth made; it once renamed and deleted whatever folder --out named."""
    keep = tmp_path / "project"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    refused = run("synth", "--profiles", "1", "--workers", "1", "--mask-only-faces", "0", "--out", str(keep), "--force")
    assert refused.returncode == 2 and "is not a dataset maskops synth made" in refused.stderr
    assert [p.name for p in keep.iterdir()] == ["notes.txt"]
    made = tmp_path / "made"
    assert run("synth", "--profiles", "1", "--workers", "1", "--mask-only-faces", "0", "--out", str(made)).returncode == 0
    (made / "synth.json").write_text("{damaged")  # a damaged receipt: still synth's folder, replaced with --force
    again = run("synth", "--profiles", "1", "--workers", "1", "--mask-only-faces", "0", "--out", str(made), "--force")
    assert again.returncode == 0, again.stderr
    assert json.loads((made / "synth.json").read_text())["train_images"] == 7


def test_counts_are_checked_by_the_parser():
    refused = run("predict", "--batch-size", "0", "photo.jpg")
    assert refused.returncode == 2 and "argument --batch-size: 0 is less than 1" in refused.stderr
    assert "argument --workers: 'two' is not a whole number" in run("synth", "--profiles", "1", "--workers", "two", "--out", "x").stderr


def test_servers_say_in_one_line_when_they_cannot_listen_or_have_no_state(tmp_path: Path):
    """A taken port, an address that is not this machine's, or a mistyped MASKOPS_HOME: one line naming it and the fix,
    exit 2, no traceback — before `serve` spends its seconds loading a model (here there is no store at all: the
    port is what it names) and before `review` or `docs` start serving 'not found' for every page."""
    import socket

    home = tmp_path / "state"
    home.mkdir()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        for command in (["docs"], ["review"], ["serve"]):
            done = run(*command, "--port", port, env={"MASKOPS_HOME": str(home)})
            assert done.returncode == 2, (command, done.stdout, done.stderr)
            assert done.stderr.strip() == (
                f"maskops {command[0]}: cannot listen on 127.0.0.1:{port} (Address already in use); another server holds "
                "that port: stop it, or pass another --port"
            ), (command, done.stderr)
    elsewhere = run("docs", "--host", "192.0.2.1", "--port", "0", env={"MASKOPS_HOME": str(home)})  # TEST-NET-1: no one's
    assert elsewhere.returncode == 2 and "192.0.2.1 is not an address of this machine: pass --host 127.0.0.1" in elsewhere.stderr
    assert "Traceback" not in elsewhere.stderr
    for command in ("docs", "review"):
        done = run(command, "--port", "0", env={"MASKOPS_HOME": str(tmp_path / "typo")})
        assert done.returncode == 2 and f"no maskops state at {tmp_path / 'typo'}" in done.stderr, (command, done.stderr)
        assert not (tmp_path / "typo").exists()  # nothing made in the mistyped folder
