"""raw_dataset and eval_dataset materialized by Dagster on an ephemeral instance."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd

from assets.raw import competition_dataset
from maskops.layout import fingerprint, scan_competition
from resources import CompetitionDataset, ManifestIOManager


def _resources(dataset: Path, manifests: Path) -> dict:
    return {"dataset": CompetitionDataset(root=str(dataset)), "manifest_io_manager": ManifestIOManager(base_path=str(manifests))}


def test_materialize_writes_manifests_with_metadata(tiny_dataset: Path, tmp_path: Path):
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([competition_dataset], resources=_resources(tiny_dataset, tmp_path), instance=instance)
    assert result.success
    stored = pd.read_parquet(tmp_path / "raw_dataset.parquet")
    expected = scan_competition(tiny_dataset).train
    assert list(stored["image_id"]) == list(expected["image_id"])
    assert list(stored["class_id"]) == list(expected["class_id"])
    assert len(pd.read_parquet(tmp_path / "eval_dataset.parquet")) == 14

    (raw,) = result.asset_materializations_for_node("competition_dataset")[:1]
    meta = raw.metadata
    assert meta["images"].value == 42 and meta["profiles"].value == 6
    assert meta["dataset_root"].value == str(tiny_dataset)
    assert meta["class_distribution"].value.startswith("![images per class](data:image/png;base64,iVBOR")
    table = meta["class_counts"].value
    assert table.count("\n") == 18 + 1 and "| 0 | wear/male/<30 |" in table
    assert meta["quarantine"].value == "No file was quarantined."
    record = instance.get_latest_materialization_event(dg.AssetKey("raw_dataset"))
    assert record.asset_materialization.tags["dagster/data_version"] == fingerprint(expected)


def test_layout_problem_fails_the_run_with_the_file_named(tiny_dataset: Path, tmp_path: Path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_dataset, broken)
    victim = next((broken / "train/images").iterdir())
    (victim / "normal.jpg").unlink()
    result = dg.materialize([competition_dataset], resources=_resources(broken, tmp_path / "m"), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    message = failure.step_failure_data.error.to_string()
    assert f"train/images/{victim.name}: missing image(s) normal" in message and "fix:" in message
    assert not (tmp_path / "m" / "raw_dataset.parquet").exists()
