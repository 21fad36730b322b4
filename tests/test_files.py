"""One way to write a file: all or nothing, locally and on object stores; the Dagster instance's dagster.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
from upath import UPath

from maskops.files import file_version, slug, write_atomic
from maskops.settings import Settings
from resources.instance import LOCAL_YAML, ensure_dagster_home


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path):
    target = tmp_path / "deep" / "table.csv"
    write_atomic(target, "a,b\n1,2\n")
    assert target.read_text() == "a,b\n1,2\n"

    def crash(f) -> None:
        f.write(b"half a fi")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, crash)
    assert target.read_text() == "a,b\n1,2\n" and [p.name for p in target.parent.iterdir()] == ["table.csv"]


def test_object_stores_get_whole_objects():
    target = UPath("memory://maskops-files-test/x/y.bin")
    write_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"


def test_versions_and_names(tmp_path: Path):
    assert file_version(tmp_path / "nothing.csv") == "missing"
    (tmp_path / "a.csv").write_text("x")
    assert len(file_version(tmp_path / "a.csv")) == 16 and slug("cropped/raw: a b") == "cropped__raw__a__b"


def test_dagster_yaml_is_ours_until_a_person_edits_it(tmp_path: Path):
    settings = Settings.from_env({"MASKOPS_HOME": str(tmp_path)})
    config = ensure_dagster_home(settings) / "dagster.yaml"
    assert config.read_text() == LOCAL_YAML and "enabled: false" in LOCAL_YAML
    config.write_text("telemetry:\n  enabled: false\n# mine\n")  # a person's own file (no maskops header)
    ensure_dagster_home(settings)
    assert config.read_text().endswith("# mine\n")


def test_the_production_profile_says_what_it_lacks(tmp_path: Path):
    from maskops.settings import SettingsError

    lacking = Settings.from_env({"MASKOPS_HOME": str(tmp_path), "MASKOPS_PROFILE": "production"}).production_problems()
    assert [p.split(",")[0] for p in lacking] == [
        "set MASKOPS_DAGSTER_POSTGRES_URL", "set MLFLOW_TRACKING_URI", "set MASKOPS_OBJECT_STORE", "set MASKOPS_CELERY_BROKER",
    ]  # fmt: skip
    with pytest.raises(SettingsError, match="use one of local, production"):
        Settings.from_env({"MASKOPS_PROFILE": "prod"})
    complete = Settings.from_env({
        "MASKOPS_HOME": str(tmp_path), "MASKOPS_PROFILE": "production", "MASKOPS_OBJECT_STORE": "s3://b/p/",
        "MASKOPS_DAGSTER_POSTGRES_URL": "postgresql+psycopg2://u@h/d", "MLFLOW_TRACKING_URI": "http://h:5000", "MASKOPS_CELERY_BROKER": "amqp://h//",
    })  # fmt: skip
    assert complete.production_problems() == [] and complete.image_store == "s3://b/p/images"
    assert complete.manifests_location == "s3://b/p/manifests" and complete.records_location == "s3://b/p/records"
    config = ensure_dagster_home(complete) / "dagster.yaml"
    assert "MASKOPS_DAGSTER_POSTGRES_URL" in config.read_text() and "QueuedRunCoordinator" in config.read_text()


def test_csv_files_are_written_with_spreadsheet_formulas_escaped(tmp_path: Path):
    import pandas as pd

    from maskops.files import write_csv_atomic

    write_csv_atomic(pd.DataFrame({"ImageID": ["=cmd|' /C calc'!A0", "a.jpg"], "ans": [-1, 3]}), tmp_path / "out.csv")
    back = pd.read_csv(tmp_path / "out.csv")
    assert back["ImageID"].tolist() == ["'=cmd|' /C calc'!A0", "a.jpg"] and back["ans"].tolist() == [-1, 3]  # numbers stay numbers
