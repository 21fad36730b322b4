"""One way to write a file: all or nothing, locally and on object stores; the Dagster instance's dagster.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
from upath import UPath

from maskops.files import file_version, slug, write_atomic
from maskops.settings import Settings
from resources.instance import DAGSTER_YAML, ensure_dagster_home


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
    assert config.read_text() == DAGSTER_YAML and "enabled: false" in DAGSTER_YAML
    config.write_text("telemetry:\n  enabled: false\n# mine\n")  # a person's own file (no maskops header)
    ensure_dagster_home(settings)
    assert config.read_text().endswith("# mine\n")
