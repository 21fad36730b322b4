"""`maskops runs`: the runs in progress, the steps waiting on a pool, and (`--sweep`) freeing what dead runs hold;
and the watch `maskops demo` keeps on the pools while its run goes."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable

import dagster as dg
from dagster._core.storage.dagster_run import RunsFilter

from maskops.settings import Settings
from resources.instance import ensure_dagster_home
from resources.runs import IN_PROGRESS, dead_runs, pool_waits, sweep

# asset-check metadata entries that say where a person reads more (expectations' reports, Data Docs)
REPORT_KEYS = ("report", "report_file", "data_docs")


def local_instance(settings: Settings) -> dg.DagsterInstance:
    logging.getLogger("alembic").setLevel(logging.WARNING)  # Dagster's storage checks its schema on open, at INFO
    return dg.DagsterInstance.from_config(str(ensure_dagster_home(settings)))


def show_runs(settings: Settings, do_sweep: bool) -> int:
    """Print the runs in progress (dead ones marked) and the pool waits; sweep the dead ones if asked. Exit 1 when a
    dead run is left holding things (so scripts can tell), else 0."""
    if settings.production:
        print("maskops runs judges runs by their process ids, which only works where the runs execute (the local profile); "
              "in production use the Dagster UI (Runs, Terminate) — run monitoring frees the slots of runs that ended")  # fmt: skip
        return 2
    if not settings.dagster_home.is_dir():  # a mistyped MASKOPS_HOME or DAGSTER_HOME: say so, create nothing there
        print(f"no Dagster state at {settings.dagster_home}: no run has started with this state folder; "
              "check MASKOPS_HOME (or DAGSTER_HOME)", file=sys.stderr)  # fmt: skip
        return 2
    instance = local_instance(settings)
    dead = {run.run_id for run in dead_runs(instance)}
    running = instance.get_runs(RunsFilter(statuses=IN_PROGRESS))
    print(f"{len(running)} run(s) in progress" + (":" if running else ""))
    for run in running:
        state = "DEAD (its processes are gone)" if run.run_id in dead else run.status.value
        print(f"  {run.run_id}  {run.job_name:<20} {state}")
    for wait in pool_waits(instance):
        print(f"waiting: {wait.describe()}")
    if do_sweep:
        for line in sweep(instance):
            print(f"swept: {line}")
        return 0
    if dead:
        print("run `maskops runs --sweep` to mark the dead run(s) failed and free their pool slots")
        return 1
    return 0


def watch_pools(instance: dg.DagsterInstance, say: Callable[[str], None], every_s: float = 15.0) -> Callable[[], None]:
    """Warn (once per step) when a step waits on a pool another run holds; returns the function that stops the watch."""
    stop = threading.Event()
    told: set[tuple[str, str]] = set()

    def loop() -> None:
        while not stop.wait(every_s):
            try:
                waits = pool_waits(instance)
            except Exception:  # a watch must never take the run down with it
                continue
            for wait in waits:
                if wait.held_by_other_runs and (wait.run_id, wait.step_key) not in told:
                    told.add((wait.run_id, wait.step_key))
                    say(f"maskops: {wait.describe()}")

    threading.Thread(target=loop, name="maskops-pool-watch", daemon=True).start()
    return stop.set


def failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """A line per failed asset check of a run: the check, its one-line verdict and where its report is."""
    lines = []
    for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=10_000).records:
        check = record.event_log_entry.dagster_event.event_specific_data
        if check.passed:
            continue
        blocking = "blocking, " if check.blocking else ""
        where = [f"{name}: {value.value}" for name, value in check.metadata.items() if name in REPORT_KEYS]
        lines.append(f"{check.asset_key.to_user_string()}:{check.check_name} failed ({blocking}{check.severity.value}): "
                     f"{check.description or 'no description'}" + "".join(f"\n    {w}" for w in where))  # fmt: skip
    return lines


def latest_run_id(instance: dg.DagsterInstance, job_name: str) -> str | None:
    runs = instance.get_runs(RunsFilter(job_name=job_name), limit=1)
    return runs[0].run_id if runs else None
