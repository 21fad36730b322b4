"""Mistaken settings and damaged state found by a tester: each gets one line naming the file or variable and the fix,
exit 2, and nothing is created or rewritten where the mistake points."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PIL import Image

from apps.cli import main
from maskops.intake import IntakeError, decode_photo
from maskops.layout import LayoutError, scan_competition
from maskops.synth.people import SynthConfig, SynthError
from tests.test_serving import huge_png_header


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 64), (120, 90, 70)).save(path)
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state folder that does not exist (a typo), with no tracking URI of its own."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("MASKOPS_HOME", str(tmp_path / "typo"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "typo"


def test_read_only_commands_create_nothing_in_a_mistyped_state_folder(home: Path, photo: Path, capsys):
    assert main(["predict", str(photo)]) == 2
    assert f"no MLflow store at {home / 'mlflow.db'}" in capsys.readouterr().err
    assert main(["runs"]) == 2
    assert f"no Dagster state at {home / 'dagster'}" in capsys.readouterr().err
    assert not home.exists()


def test_a_tracking_server_that_does_not_answer_is_one_line_and_creates_nothing(home: Path, photo: Path, monkeypatch, capsys):
    from tests.servers import free_port

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the command's own default is 2, with back-off
    assert main(["predict", str(photo)]) == 2
    err = capsys.readouterr().err
    assert "the store did not answer" in err and "Connection refused" in err and "Check that the tracking server runs" in err
    assert len(err.strip().splitlines()) == 1 and "registered models" not in err
    assert not home.exists()  # the default --out under MASKOPS_HOME was only probed, not made


def test_a_percent_encoded_store_path_is_the_path_sqlalchemy_opens(tmp_path: Path):
    from urllib.parse import quote

    from tracking.relocate import sqlite_file

    assert sqlite_file(f"sqlite:///{quote(str(tmp_path / 'a b' / 'été.db'))}?mode=ro") == tmp_path / "a b" / "été.db"


def test_a_store_that_cannot_be_opened_is_named(home: Path, photo: Path, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{photo}")  # a file, but not a database
    assert main(["predict", str(photo), "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert f"cannot open the MLflow store sqlite:///{photo} (DatabaseError: file is not a database)" in err
    assert "point MLFLOW_TRACKING_URI at a store" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "foo")  # MLflow's retired file store
    assert main(["predict", str(photo), "--out", str(tmp_path / "p.csv")]) == 2
    assert "cannot open the MLflow store foo (MlflowException" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()


def test_an_unwritable_out_is_refused_before_the_model_loads(home: Path, photo: Path, tmp_path: Path, monkeypatch, capsys):
    (tmp_path / "state").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'state' / 'mlflow.db'}")
    (tmp_path / "state" / "mlflow.db").touch()  # an empty file is a valid, empty SQLite database: the model is never looked up
    taken = tmp_path / "taken"
    (taken / "predictions.csv").mkdir(parents=True)  # --out taken: taken/predictions.csv, a folder
    for out, why in (
        (photo, f"{photo} is a file, not a folder"),
        (taken, "a folder of that name exists"),
    ):  # photo: photo.jpg/predictions.csv
        assert main(["predict", str(photo), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "cannot write" in err and why in err and "choose another --out" in err and "cannot load" not in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["mlflow.db", "photo.jpg", "predictions.csv", "state", "taken"]  # no probe left


def test_a_state_folder_that_is_a_file_is_named(tmp_path: Path, monkeypatch, capsys):
    (tmp_path / "state").write_text("not a folder")
    monkeypatch.setenv("MASKOPS_HOME", str(tmp_path / "state"))
    assert main(["runs"]) == 2
    assert f"MASKOPS_HOME={tmp_path / 'state'} is a file: set MASKOPS_HOME to a folder" in capsys.readouterr().err


def test_report_names_a_damaged_summary_and_lists_the_others(tmp_path: Path, monkeypatch, capsys):
    quality = tmp_path / "state" / "reports" / "quality"
    quality.mkdir(parents=True)
    good = {"asset": "raw_dataset", "contract": "labels", "success": True, "checked_at": "2026-12-01T00:00:00", "report": "r.html"}
    (quality / "a_good.json").write_text(json.dumps(good))
    (quality / "b_cut.json").write_text('{"asset": "raw')
    (quality / "c_keys.json").write_text('{"asset": "x"}')
    (quality / "d_folder.json").mkdir()
    (quality / "e_deep.json").write_text("[" * 100_000 + "]" * 100_000)  # RecursionError in json
    monkeypatch.setenv("MASKOPS_HOME", str(tmp_path / "state"))
    assert main(["report"]) == 1
    printed = capsys.readouterr()
    assert "raw_dataset / labels" in printed.out and "passed" in printed.out
    assert (
        "b_cut.json: unreadable summary (JSONDecodeError" in printed.err
        and "c_keys.json: unreadable summary (no 'success' entry)" in printed.err
    )
    assert "d_folder.json: unreadable summary (IsADirectoryError" in printed.err and "4 summary file(s)" in printed.err
    assert "e_deep.json: unreadable summary (RecursionError" in printed.err


def test_a_nan_noise_rate_is_refused():
    with pytest.raises(SynthError, match="noise rates"):
        SynthConfig(profiles=1, gender_noise=math.nan)


def test_pillows_own_size_guard_reads_as_ours(tmp_path: Path):
    with pytest.raises(IntakeError, match=r"^image too large: 400000000 pixels \(limit 40000000 pixels\)$"):
        decode_photo(huge_png_header(20000))  # past twice Pillow's MAX_IMAGE_PIXELS, Pillow refuses it in Image.open


def test_a_dataset_root_that_is_a_file_is_named_so(tmp_path: Path):
    (tmp_path / "data.zip").write_bytes(b"PK")
    with pytest.raises(LayoutError, match="dataset root is a file, not a folder"):
        scan_competition(tmp_path / "data.zip")
