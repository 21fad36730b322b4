"""kill -9 in the middle of a pooled step: the dead run must not hold the pool for ever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from apps.runs import show_runs
from assets.automation import stuck_runs
from maskops.settings import Settings
from resources.instance import IMAGE_MODELS_POOL, ensure_dagster_home
from resources.runs import dead_runs, pool_waits, sweep

JOB = Path(__file__).with_name("pool_job.py")
DAGSTER = str(Path(sys.executable).with_name("dagster"))


def launch(home: Path, seconds: float) -> subprocess.Popen:
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    config = home / f"nap-{seconds}.yaml"
    config.write_text(f"ops:\n  pooled_step:\n    config:\n      seconds: {seconds}\n")
    return subprocess.Popen([DAGSTER, "job", "execute", "-f", str(JOB), "-j", "pooled", "-c", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


@pytest.mark.slow
def test_a_killed_run_frees_its_pool_slot_and_the_next_run_finishes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    settings = Settings.from_env({"MASKOPS_HOME": str(tmp_path / "state")})
    home = ensure_dagster_home(settings)
    instance = dg.DagsterInstance.from_config(str(home))
    first = launch(home, seconds=600)
    claimed = lambda: instance.event_log_storage.get_concurrency_info(IMAGE_MODELS_POOL).claimed_slots  # noqa: E731
    wait_for(claimed, 60, "the first run to take the image_models slot")
    os.killpg(first.pid, signal.SIGKILL)  # the run worker and its step process, as a power cut would
    first.wait()
    [dead] = wait_for(lambda: dead_runs(instance), 10, "the killed run to be seen as dead")
    assert dead.status == dg.DagsterRunStatus.STARTED  # Dagster itself never learns the run ended

    second = launch(home, seconds=0.1)
    try:
        waits = wait_for(lambda: pool_waits(instance), 60, "the second run's step to wait on the pool")
        assert waits[0].pool == IMAGE_MODELS_POOL and waits[0].held_by_other_runs and dead.run_id[:8] in waits[0].describe()
        time.sleep(3)
        assert second.poll() is None, "the second run must be blocked by the dead run's slot before the sweep"
        assert show_runs(settings, do_sweep=False) == 1  # `maskops runs` says so, and how to fix it
        shown = capsys.readouterr().out
        assert f"{dead.run_id}  pooled" in shown and "DEAD" in shown and "waits for a slot of pool 'image_models'" in shown
        assert "maskops runs --sweep" in shown
        verdict = stuck_runs(dg.build_sensor_context(instance=instance))  # what the daemon does every minute
        assert dead.run_id in verdict.skip_message and "marked failed" in verdict.skip_message
        assert second.wait(timeout=90) == 0
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_runs(limit=1)[0].status == dg.DagsterRunStatus.SUCCESS  # the second run
    assert not instance.event_log_storage.get_concurrency_info(IMAGE_MODELS_POOL).claimed_slots
    assert sweep(instance) == []  # nothing left to do; a live or finished run is never touched


def test_a_failed_blocking_check_is_named_with_its_verdict_and_report() -> None:
    from apps.runs import failed_checks

    @dg.asset
    def table() -> int:
        return 1

    @dg.asset_check(asset=table, blocking=True)
    def balance() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False, description="KL 0.22 > 0.15; rarest age group >=60 at 6% < 10%",
                                   metadata={"report": dg.MetadataValue.url("http://127.0.0.1:8095/balance.html"), "rows": 3})  # fmt: skip

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([table, balance], instance=instance, raise_on_error=False)
    [line] = failed_checks(instance, result.run_id)
    assert line.startswith("table:balance failed (blocking, ERROR): KL 0.22 > 0.15; rarest age group >=60")
    assert "report: http://127.0.0.1:8095/balance.html" in line and "rows" not in line


def test_process_ids_judge_runs_only_in_the_local_profile(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # in production the runs execute in other containers: their pids mean nothing here, so nothing is swept
    production = Settings.from_env({"MASKOPS_PROFILE": "production", "MASKOPS_HOME": str(tmp_path / "state")})
    assert show_runs(production, do_sweep=True) == 2 and "only works where the runs execute" in capsys.readouterr().out
    assert not (tmp_path / "state").exists()  # not even an instance was opened
