"""The Parquet manifest IO manager: round trip through Dagster, atomic writes."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from resources.io_managers import ManifestIOManager


@dg.asset(io_manager_key="manifest_io_manager")
def upstream_manifest() -> pd.DataFrame:
    return pd.DataFrame({"image_id": ["a/normal", "b/mask1"], "class_id": pd.array([12, 3], dtype="int8")})


@dg.asset(io_manager_key="manifest_io_manager")
def downstream_manifest(upstream_manifest: pd.DataFrame) -> pd.DataFrame:
    return upstream_manifest.assign(class_id=upstream_manifest["class_id"] + 1)


def test_round_trip_through_dagster(tmp_path: Path):
    io = ManifestIOManager(base_path=str(tmp_path / "manifests"))
    result = dg.materialize([upstream_manifest, downstream_manifest], resources={"manifest_io_manager": io})
    assert result.success
    stored = pd.read_parquet(tmp_path / "manifests/downstream_manifest.parquet")
    assert list(stored["class_id"]) == [13, 4] and str(stored["class_id"].dtype) == "int8"
    meta = result.asset_materializations_for_node("upstream_manifest")[0].metadata
    assert meta["dagster/row_count"].value == 2
    columns = meta["dagster/column_schema"].schema.columns
    assert [c.name for c in columns] == ["image_id", "class_id"]
    assert columns[1].type == "int8" and columns[1].description.startswith("The competition class 0..17")  # from maskops.columns
    assert sorted(p.name for p in (tmp_path / "manifests").iterdir()) == ["downstream_manifest.parquet", "upstream_manifest.parquet"]


def test_failed_write_keeps_the_previous_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    io = ManifestIOManager(base_path=str(tmp_path))
    assert dg.materialize([upstream_manifest], resources={"manifest_io_manager": io}).success
    target = tmp_path / "upstream_manifest.parquet"
    before = target.read_bytes()

    def crash(self, path, *args, **kwargs):
        Path(path).write_bytes(b"PAR1 half written")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", crash)
    result = dg.materialize([upstream_manifest], resources={"manifest_io_manager": io}, raise_on_error=False)
    assert not result.success
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["upstream_manifest.parquet"]  # no temporary file left


def test_non_dataframe_is_refused_with_the_asset_name(tmp_path: Path):
    @dg.asset(io_manager_key="manifest_io_manager")
    def not_a_table() -> dict:
        return {"a": 1}

    io = ManifestIOManager(base_path=str(tmp_path))
    with pytest.raises(TypeError, match="not_a_table returned dict"):
        dg.materialize([not_a_table], resources={"manifest_io_manager": io})
