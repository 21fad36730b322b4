"""Retraining automation, evaluated against a real instance: the sources are observed on the minute, and a new
data version sets going what depends on it — everything downstream, nothing upstream, never past a blocking check.
And the weekly challenger schedule."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationPlanned
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.utils import make_new_run_id

from assets.automation import weekly_challenger
from assets.definitions import defs as code_location
from assets.sources import SOURCE_KEYS
from maskops.layout import source_fingerprint
from tests.conftest import pipeline_resources

START = dt.datetime(2026, 11, 30, 10, 0, 30, tzinfo=dt.UTC)
OBSERVED = {"corrections_file", "dataset_folder", "exclusions_file"}
RUN_END = {DagsterRunStatus.SUCCESS: DagsterEventType.RUN_SUCCESS, DagsterRunStatus.FAILURE: DagsterEventType.RUN_FAILURE,
           DagsterRunStatus.CANCELED: DagsterEventType.RUN_CANCELED}  # fmt: skip


class Automation:
    """The code location's assets on a test instance, ticked by hand at chosen times."""

    def __init__(self, state: Path, dataset: Path):
        self.labels = state / "labels"
        self.dataset = dataset
        observe = dg.define_asset_job("observe_sources", selection=dg.AssetSelection.assets(*SOURCE_KEYS))
        self.defs = dg.Definitions(assets=code_location.assets, asset_checks=code_location.asset_checks, jobs=[observe],
                                   resources=pipeline_resources(state, dataset))  # fmt: skip
        self.graph = self.defs.resolve_asset_graph()
        self.instance = dg.DagsterInstance.ephemeral()
        self.cursor, self.seconds = None, 0
        self.checks: set[dg.AssetCheckKey] = set()

    def observe(self) -> None:
        assert self.defs.resolve_job_def("observe_sources").execute_in_process(instance=self.instance).success

    def tick(self, seconds: int = 20) -> set[str]:
        """One evaluation of the automation conditions, `seconds` after the last: the asset keys it requests (the
        checks it requests with them in `self.checks`)."""
        self.seconds += seconds
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor,
                                                   evaluation_time=START + dt.timedelta(seconds=self.seconds))  # fmt: skip
        self.cursor = result.cursor
        self.checks = {r.key for r in result.results if isinstance(r.key, dg.AssetCheckKey) and r.true_subset.size}
        return {k.to_user_string() for k in self.graph.get_all_asset_keys() if result.get_num_requested(k)}

    def run(self, keys, stop_at: str | None = None, check_fails: bool = False,
            status: DagsterRunStatus = DagsterRunStatus.FAILURE) -> None:  # fmt: skip
        """Record a run of `keys` as Dagster does: every check of the plan PLANNED at its start, then each asset in graph
        order materialized and checked. It ends at `stop_at`: that step crashed (not materialized) or, with
        `check_fails`, it was materialized and its blocking checks failed; the run then ends with `status`. A real run
        id matters: runless events share one id, which makes any check look evaluated against the latest version."""
        run_id, job = make_new_run_id(), "__ASSET_JOB"
        self.instance.add_run(DagsterRun(job_name=job, run_id=run_id, status=DagsterRunStatus.STARTED))

        def emit(kind: DagsterEventType, data) -> None:
            self.instance.report_dagster_event(DagsterEvent(kind.value, job, event_specific_data=data), run_id=run_id)

        planned = [k for k in self.graph.toposorted_asset_keys if k.to_user_string() in keys and self.graph.get(k).is_materializable]
        for key in planned:
            for check in self.graph.get(key).check_keys:
                emit(DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED, AssetCheckEvaluationPlanned(asset_key=key, check_name=check.name))
        stopped = False
        for key in planned:
            stopped = key.to_user_string() == stop_at
            if stopped and not check_fails:
                break
            emit(DagsterEventType.ASSET_MATERIALIZATION, StepMaterializationData(dg.AssetMaterialization(key)))
            for check in self.graph.get(key).check_keys:
                passed = not (stopped and self.graph.get(check).blocking)
                emit(DagsterEventType.ASSET_CHECK_EVALUATION, dg.AssetCheckEvaluation(asset_key=key, check_name=check.name, passed=passed))
            if stopped:
                break
        end = status if stopped else DagsterRunStatus.SUCCESS
        self.instance.run_storage.handle_run_event(run_id, DagsterEvent(RUN_END[end].value, job))

    def done(self, keys) -> None:
        """Record the assets as materialized with their checks passed, in one successful run."""
        self.run(keys)

    def cascade(self) -> set[str]:
        """Everything requested until the automation is quiet again (each request carried out at once)."""
        return {key for wave in self.waves() for key in wave}

    def waves(self) -> list[set[str]]:
        """What each tick requested until the automation was quiet again, each request carried out at once."""
        waves: list[set[str]] = []
        for _ in range(12):
            now = self.tick() - OBSERVED
            if not now:
                return waves
            waves.append(now)
            self.done(now)
        raise AssertionError(f"the automation never settled; requested {waves}")

    def downstream_of(self, *names: str) -> set[str]:
        keys = dg.AssetSelection.assets(*names).downstream().resolve(self.graph)
        return {k.to_user_string() for k in keys}


@pytest.fixture
def automation(dataset_copy: Path, tmp_path: Path) -> Automation:
    auto = Automation(tmp_path / "state", dataset_copy)
    assert auto.tick(0) == set()  # the first tick only starts the clock
    auto.observe()  # what `make demo` does: the pipeline job observes the sources and materializes everything
    auto.done({k.to_user_string() for k in auto.graph.get_all_asset_keys()})
    assert auto.tick(300) == OBSERVED  # every five minutes the sources are looked at
    auto.observe()
    assert auto.tick() == set()  # the same files: nothing to do
    return auto


def test_a_changed_corrections_file_retrains_what_depends_on_it(automation: Automation):
    automation.labels.mkdir(parents=True, exist_ok=True)
    profile = sorted((automation.dataset / "train/images").iterdir())[0].name
    (automation.labels / "corrections.csv").write_text(f"profile_id,stem,field,value,reason\n{profile},,gender,female,checked the photos\n")
    automation.observe()
    requested = automation.cascade()
    assert requested == automation.downstream_of("corrections_file") - {"corrections_file"}
    assert {"label_corrections", "relabeled_dataset", "relabeled_crops", "relabeled_model", "ensemble", "submission"} <= requested
    assert not {"raw_dataset", "eval_dataset", "raw_crops", "eval_crops", "label_exclusions"} & requested  # nothing upstream or beside
    automation.observe()
    assert automation.tick() == set()  # done: the same file does not retrain again


def test_a_dataset_folder_that_is_gone_for_a_while_sets_nothing_going(automation: Automation):
    """An unmounted or mid-sync folder once got the version of "missing": every asset was requested (the run failed on
    the scan), and when the same folder came back, its version changed again and all four models retrained."""
    away = automation.dataset.with_name("away")
    automation.dataset.rename(away)
    result = automation.defs.resolve_job_def("observe_sources").execute_in_process(instance=automation.instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "the dataset folder is missing or not a folder" in failure.event_specific_data.error.to_string()
    assert automation.tick() - OBSERVED == set()
    away.rename(automation.dataset)
    automation.observe()
    assert automation.tick() == set()  # the same files as before it went: nothing to do


def test_new_or_replaced_photos_reread_the_dataset_and_retrain(automation: Automation):
    photo = next(next((automation.dataset / "train/images").iterdir()).iterdir())
    before = source_fingerprint(automation.dataset)
    os.utime(photo, ns=(photo.stat().st_atime_ns, photo.stat().st_mtime_ns + 10**9))  # a photo replaced in place
    assert source_fingerprint(automation.dataset) != before
    automation.observe()
    requested = automation.cascade()
    assert requested == automation.downstream_of("dataset_folder") - {"dataset_folder"}
    assert {"raw_dataset", "eval_dataset", "raw_crops", "eval_crops", "raw_model", "ensemble", "submission"} <= requested
    assert not {"label_corrections", "label_exclusions"} & requested
    for path in (automation.dataset / "train/train.csv", automation.dataset / "eval/info.csv"):
        assert path.exists()  # observing only reads


def test_a_failed_blocking_check_stops_the_run_and_is_not_retried_until_the_file_changes(automation: Automation):
    automation.labels.mkdir(parents=True, exist_ok=True)
    exclusions = automation.labels / "exclusions.csv"
    exclusions.write_text("profile_id,stem,reason\nnobody,,not in the dataset\n")
    automation.observe()
    requested = automation.tick() - OBSERVED
    assert requested == automation.downstream_of("exclusions_file") - {"exclusions_file"}  # requested as one run
    # in that run label_exclusions is written, its blocking contract fails, and Dagster skips everything after it
    automation.run(requested, stop_at="label_exclusions", check_fails=True)
    assert automation.tick() - OBSERVED == set() and automation.tick(300) - OBSERVED == set()  # not retried on its own
    profile = sorted((automation.dataset / "train/images").iterdir())[0].name
    exclusions.write_text(f"profile_id,stem,reason\n{profile},,blurry\n")  # fixed
    automation.observe()
    assert "cleaned_dataset" in automation.cascade()


def change_corrections(automation: Automation, gender: str) -> None:
    automation.labels.mkdir(parents=True, exist_ok=True)
    profile = sorted((automation.dataset / "train/images").iterdir())[0].name
    (automation.labels / "corrections.csv").write_text(f"profile_id,stem,field,value,reason\n{profile},,gender,{gender},checked\n")
    automation.observe()


@pytest.mark.parametrize(("stop_at", "status"), [("relabeled_crops", DagsterRunStatus.FAILURE), ("profile_split", DagsterRunStatus.FAILURE),
                                                 ("generated_dataset", DagsterRunStatus.CANCELED), ("raw_model", DagsterRunStatus.FAILURE)])  # fmt: skip
def test_after_a_failed_run_the_next_change_flows_in_one_run(automation: Automation, stop_at: str, status: DagsterRunStatus):
    """A failed or killed run leaves the checks it planned but never reached unevaluated (PLANNED), and those count as
    not passed. The next change then flowed in up to seven waves: what sat below such an asset waited a tick while its
    other inputs went ahead, so the generated model trained on stale crops, then again, and the ensemble and submission
    twice. A blocking check is now requested in the tick its asset is, so the gate counts it as coming."""
    change_corrections(automation, "female")
    assert automation.tick() - OBSERVED == automation.downstream_of("corrections_file") - {"corrections_file"}
    automation.run(automation.downstream_of("corrections_file"), stop_at=stop_at, status=status)
    assert automation.tick() - OBSERVED == set() and automation.tick(300) - OBSERVED == set()  # a failed run is not retried
    change_corrections(automation, "male")
    first = automation.tick() - OBSERVED
    assert first == automation.downstream_of("corrections_file") - {"corrections_file"}  # one run, nothing twice
    blocking = {c for k in first for c in automation.graph.get(dg.AssetKey(k)).check_keys if automation.graph.get(c).blocking}
    assert blocking and blocking <= automation.checks  # its blocking checks requested with it (they gate what is below)
    automation.done(first)
    assert automation.tick() - OBSERVED == set()


def test_weekly_challenger_trains_with_the_weeks_seed():
    job = code_location.resolve_job_def("train_challenger")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {
        "raw_model", "relabeled_model", "cleaned_model", "generated_model", "ensemble", "submission",
    }  # fmt: skip
    monday = dt.datetime(2026, 11, 30, 3, tzinfo=dt.UTC)
    request = weekly_challenger(dg.build_schedule_context(scheduled_execution_time=monday))
    assert request.run_key == "challenger-202649"
    assert request.run_config["ops"]["cleaned_model"]["config"]["seed"] == 202649
    assert dg.validate_run_config(job, request.run_config)
    next_week = weekly_challenger(dg.build_schedule_context(scheduled_execution_time=monday + dt.timedelta(days=7)))
    assert next_week.run_config["ops"]["raw_model"]["config"]["seed"] == 202650
