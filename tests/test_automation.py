"""The new-data sensor and the weekly challenger schedule, evaluated against a real instance."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import pytest

from assets.automation import new_data_sensor, weekly_challenger
from assets.labels import label_corrections, label_exclusions
from assets.raw import competition_dataset
from maskops.layout import source_fingerprint
from maskops.settings import Settings
from resources import build_resources


def _defs(settings: Settings) -> dg.Definitions:
    from assets.definitions import defs

    return dg.Definitions(
        assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs, sensors=defs.sensors, schedules=defs.schedules,
        resources=build_resources(settings),
    )  # fmt: skip


def _keys(request: dg.RunRequest) -> set[str]:
    return {key.to_user_string() for key in request.asset_selection}


@pytest.fixture
def world(dataset_copy: Path, tmp_path: Path):
    settings = Settings.from_env({"MASKOPS_HOME": str(tmp_path / "state"), "MASKOPS_DATASET": str(dataset_copy)})
    defs = _defs(settings)
    resources = build_resources(settings)
    instance = dg.DagsterInstance.ephemeral()

    def tick():
        context = dg.build_sensor_context(instance=instance, definitions=defs, resources=resources)
        return new_data_sensor(context)

    return settings, defs, resources, instance, tick


def test_new_data_sensor_requests_what_changed_and_its_downstream(world):
    settings, defs, resources, instance, tick = world
    first = tick()  # nothing read yet: everything
    assert isinstance(first, dg.RunRequest)
    assert {"raw_dataset", "eval_dataset", "label_corrections", "model/raw", "ensemble", "submission"} <= _keys(first)
    job = defs.resolve_job_def("maskops_pipeline")
    job.get_subset(asset_selection=set(first.asset_selection))  # a valid subset of the job the sensor targets

    busy = instance.add_run(
        dg.DagsterRun(job_name="maskops_pipeline", status=dg.DagsterRunStatus.STARTED, tags={"dagster/sensor_name": "new_data_sensor"})
    )
    assert "still in progress" in tick().skip_message  # one run at a time
    instance.report_run_failed(busy)

    inputs = [competition_dataset, label_corrections, label_exclusions]
    assert dg.materialize(inputs, resources=resources, instance=instance).success
    quiet = tick()
    assert isinstance(quiet, dg.SkipReason) and "as the assets last read them" in quiet.skip_message

    settings.labels.mkdir(parents=True, exist_ok=True)
    profile = sorted((settings.dataset / "train/images").iterdir())[0].name
    (settings.labels / "corrections.csv").write_text(f"profile_id,stem,field,value,reason\n{profile},,gender,female,checked the photos\n")
    relabel = tick()
    assert isinstance(relabel, dg.RunRequest) and relabel.tags["maskops/trigger"] == "label_corrections: corrections.csv changed"
    assert {"label_corrections", "relabeled_dataset", "cropped/relabeled", "model/relabeled", "ensemble"} <= _keys(relabel)
    assert not {"raw_dataset", "eval_dataset", "cropped/raw", "cropped/eval", "label_exclusions"} & _keys(relabel)
    assert tick().run_key == relabel.run_key  # the same files, the same request: Dagster launches it once

    assert dg.materialize([label_corrections], resources=resources, instance=instance).success
    assert isinstance(tick(), dg.SkipReason)
    photo = next((settings.dataset / "train/images" / profile).iterdir())
    before = source_fingerprint(settings.dataset)
    os.utime(photo, ns=(photo.stat().st_atime_ns, photo.stat().st_mtime_ns + 10**9))  # a photo replaced in place
    assert source_fingerprint(settings.dataset) != before
    new_data = tick()
    assert isinstance(new_data, dg.RunRequest) and {"raw_dataset", "eval_dataset", "cropped/raw", "cropped/eval", "submission"} <= _keys(
        new_data
    )
    assert "label_corrections" not in _keys(new_data) and new_data.tags["maskops/trigger"].startswith(
        "eval_dataset, raw_dataset: dataset files changed"
    )
    for path in (settings.dataset / "train/train.csv", settings.dataset / "eval/info.csv"):
        assert path.exists()  # the sensor only reads


def test_weekly_challenger_trains_with_the_weeks_seed(tmp_path: Path):
    settings = Settings.from_env({"MASKOPS_HOME": str(tmp_path / "state")})
    job = _defs(settings).resolve_job_def("train_challenger")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {
        "model/raw", "model/relabeled", "model/cleaned", "model/generated", "ensemble", "submission",
    }  # fmt: skip
    monday = dt.datetime(2026, 11, 30, 3, tzinfo=dt.UTC)
    request = weekly_challenger(dg.build_schedule_context(scheduled_execution_time=monday))
    assert request.run_key == "challenger-202649"
    assert request.run_config["ops"]["model__cleaned"]["config"]["seed"] == 202649
    assert dg.validate_run_config(job, request.run_config)
    next_week = weekly_challenger(dg.build_schedule_context(scheduled_execution_time=monday + dt.timedelta(days=7)))
    assert next_week.run_config["ops"]["model__raw"]["config"]["seed"] == 202650
