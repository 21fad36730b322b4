"""A state folder moved or copied elsewhere keeps its models, and a copy never writes into the original."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from maskops.settings import Settings
from resources import build_resources
from tests.conftest import snapshot
from tests.onnx_models import brightness_segmenter
from tests.registered import register_ensemble
from tracking.relocate import LOCATION_COLUMNS, follow_artifact_root
from tracking.service import LoggedModel, TrackingService


def tracking_of(home: Path) -> TrackingService:
    """The local profile's tracking service on the state folder `home`, as the pipeline builds it."""
    return build_resources(Settings.from_env({"MASKOPS_HOME": str(home)}))["tracking"].service()


def recorded_locations(home: Path) -> list[str]:
    with sqlite3.connect(home / "mlflow.db") as conn:
        return [v for t, c in LOCATION_COLUMNS for (v,) in conn.execute(f"SELECT {c} FROM {t}") if v]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state folder whose store holds a registered member and the ensemble @champion (never opened again)."""
    home = tmp_path_factory.mktemp("pristine") / ".maskops"
    (home / "models").mkdir(parents=True)
    brightness_segmenter(home / "models" / "tiny_segmenter.onnx")
    register_ensemble(tracking_of(home), home / "models" / "tiny_segmenter.onnx")
    return home


def state_folder(pristine: Path, home: Path) -> Path:
    """A copy of the pristine state folder at `home`, opened there once: its store records `home`'s own paths."""
    shutil.copytree(pristine, home)
    tracking_of(home).experiment_id()
    assert all(str(home / "mlartifacts") in location for location in recorded_locations(home) if location.startswith("file:"))
    return home


def assert_usable_from(home: Path) -> None:
    """Champion by alias, member by version, a record's stale location, and a new run: all inside `home`."""
    from tracking.prediction import load_model

    service = tracking_of(home)
    root = (home / "mlartifacts").as_uri()
    assert all(location.startswith(root) for location in recorded_locations(home) if location.startswith("file:"))
    assert service.storage_location("models:/maskops-ensemble@champion").startswith(root)
    assert hasattr(load_model(service, "models:/maskops-ensemble@champion", home / "models"), "predict")
    member = service.client.get_model_version("maskops-raw", "1")
    assert service.load_pytorch("models:/maskops-raw/1") is not None
    (output,) = service.client.get_run(member.run_id).outputs.model_outputs
    stale = LoggedModel(output.model_id, member.run_id, "file:///where/the/folder/was/models/x/artifacts")  # a record made before
    assert service.version_of("maskops-raw", stale) == "1"
    with service.run("after the move", {}) as run:
        run.log_json("note.json", {"written": "here"})
    assert (Path(service.client.get_run(run.run_id).info.artifact_uri[len("file://") :]) / "note.json").is_file()
    assert service.client.get_run(run.run_id).info.artifact_uri.startswith(root)


def test_a_moved_state_folder_keeps_its_champion(pristine: Path, tmp_path: Path):
    before = state_folder(pristine, tmp_path / "before" / ".maskops")
    moved = tmp_path / "elsewhere" / "state"
    moved.parent.mkdir()
    before.rename(moved)  # the old folder is gone: any location still pointing there fails
    assert_usable_from(moved)


def test_a_copied_state_folder_never_touches_the_original(pristine: Path, tmp_path: Path):
    original = state_folder(pristine, tmp_path / "original")
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)  # its store still names the original's artifacts, which exist
    seen = snapshot(original)
    assert_usable_from(copy)
    assert snapshot(original) == seen  # not a byte of the original's store or artifacts was written
    assert not [location for location in recorded_locations(copy) if str(original) in location]


def test_only_the_recorded_root_is_rewritten_and_only_for_a_local_store(tmp_path: Path):
    db = tmp_path / "m.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE experiments (experiment_id INTEGER, name TEXT, artifact_location TEXT)")
        conn.execute("CREATE TABLE runs (run_uuid TEXT, artifact_uri TEXT)")
        conn.executemany("INSERT INTO experiments VALUES (?, ?, ?)", [(0, "Default", "/old/mlruns/0"), (1, "maskops", "file:///old/art")])
        conn.executemany("INSERT INTO runs VALUES (?, ?)", [("a", "file:///old/art/a/artifacts"), ("b", "file:///old/art2/b"),
                                                           ("c", "/old/art/c"), ("d", "s3://bucket/old/art/d")])  # fmt: skip
    # /old/art does not exist: the folder moved (the new root need not hold a run folder: runs that logged only metrics have none)
    assert follow_artifact_root("postgresql://db/mlflow", "maskops", str(tmp_path / "new")) is None
    assert follow_artifact_root(f"sqlite:///{db}", "maskops", "s3://bucket/art") is None
    done = follow_artifact_root(f"sqlite:///{db}", "maskops", str(tmp_path / "new"))
    assert done is not None and (done.old, done.rows) == ("/old/art", 3)
    new = tmp_path / "new"
    with sqlite3.connect(db) as conn:
        assert dict(conn.execute("SELECT run_uuid, artifact_uri FROM runs")) == {
            "a": f"{new.as_uri()}/a/artifacts", "b": "file:///old/art2/b", "c": f"{new}/c", "d": "s3://bucket/old/art/d"}  # fmt: skip
        assert conn.execute("SELECT artifact_location FROM experiments WHERE name = 'Default'").fetchone() == ("/old/mlruns/0",)
    assert follow_artifact_root(f"sqlite:///{db}", "maskops", str(tmp_path / "new")) is None  # done once


def test_a_store_opened_with_a_root_that_does_not_hold_its_artifacts_is_left_as_it_is(pristine: Path, tmp_path: Path, caplog):
    """MLFLOW_TRACKING_URI names a state folder's store while MASKOPS_HOME is unset (or another, empty, folder): the
    store keeps pointing at its own artifacts, and its models load from there."""
    from tracking.prediction import load_model

    original = state_folder(pristine, tmp_path / "original")
    seen = recorded_locations(original)
    for elsewhere in (tmp_path / "no-such-folder", tmp_path / "empty"):
        (tmp_path / "empty" / "mlartifacts").mkdir(parents=True, exist_ok=True)
        settings = Settings.from_env({"MASKOPS_HOME": str(elsewhere), "MLFLOW_TRACKING_URI": f"sqlite:///{original / 'mlflow.db'}"})
        service = build_resources(settings)["tracking"].service()
        assert recorded_locations(original) == seen and "does not hold them: their locations are left as they are" in caplog.text
        assert hasattr(load_model(service, "models:/maskops-ensemble@champion", original / "models"), "predict")
    assert not (tmp_path / "no-such-folder").exists()


def test_a_model_whose_files_are_damaged_is_named_not_a_traceback(pristine: Path, tmp_path: Path, monkeypatch, capsys, astronaut):
    from apps.cli import main

    home = state_folder(pristine, tmp_path / "state")
    damaged = sorted((home / "mlartifacts").rglob("*.safetensors"))
    assert damaged
    for path in damaged:  # a half copy: every weights file cut short
        path.write_bytes(path.read_bytes()[:20])
    astronaut.save(tmp_path / "face.jpg")
    monkeypatch.setenv("MASKOPS_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["predict", str(tmp_path / "face.jpg"), "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert "cannot load models:/maskops-ensemble@champion: its files at" in err and "are missing or damaged" in err
    assert "Traceback" not in err and not (tmp_path / "p.csv").exists()
