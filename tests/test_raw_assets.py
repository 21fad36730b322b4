"""raw_dataset and eval_dataset materialized by Dagster on an ephemeral instance."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd

from assets.raw import competition_dataset
from assets.sources import sources
from maskops.layout import fingerprint, scan_competition
from tests.conftest import pipeline_resources


def _resources(dataset: Path, state: Path) -> dict:
    return pipeline_resources(state, dataset)


def test_materialize_writes_manifests_with_metadata(tiny_dataset: Path, tmp_path: Path):
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([sources, competition_dataset], resources=_resources(tiny_dataset, tmp_path), instance=instance)
    assert result.success
    stored = pd.read_parquet(tmp_path / "manifests/raw_dataset.parquet")
    expected = scan_competition(tiny_dataset).train
    assert list(stored["image_id"]) == list(expected["image_id"])
    assert list(stored["class_id"]) == list(expected["class_id"])
    assert len(pd.read_parquet(tmp_path / "manifests/eval_dataset.parquet")) == 14

    (raw,) = result.asset_materializations_for_node("competition_dataset")[:1]
    meta = raw.metadata
    assert meta["images"].value == 42 and meta["profiles"].value == 6
    assert meta["dataset_root"].value == str(tiny_dataset)
    chart = Path(meta["class_distribution"].value)  # a file the metadata links to, not a picture in the event log
    assert chart.parent.parent == tmp_path / "reports/figures" and chart.read_bytes()[:4] == b"\x89PNG"
    counts = meta["class_counts"]
    assert [c.name for c in counts.schema.columns] == ["class", "name", "images", "share_pct"] and counts.schema.columns[2].type == "int"
    assert len(counts.records) == 18 and counts.records[0].data["name"] == "wear/male/<30"
    assert sum(r.data["images"] for r in counts.records) == 42
    assert meta["quarantine"].records == []
    record = instance.get_latest_materialization_event(dg.AssetKey("raw_dataset"))
    assert record.asset_materialization.tags["dagster/data_version"] == fingerprint(expected)


def test_layout_problem_fails_the_run_with_the_file_named(tiny_dataset: Path, tmp_path: Path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_dataset, broken)
    victim = next((broken / "train/images").iterdir())
    (victim / "normal.jpg").unlink()
    result = dg.materialize([sources, competition_dataset], resources=_resources(broken, tmp_path / "m"), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    message = failure.step_failure_data.error.to_string()
    assert f"train/images/{victim.name}: missing image(s) normal" in message and "fix:" in message
    assert not (tmp_path / "m/manifests/raw_dataset.parquet").exists()
