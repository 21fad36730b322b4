"""Runs whose processes are gone: find them, mark them failed and give back the pool slots they held.

A run killed with SIGKILL (or a machine that lost power) never reports its end: it stays STARTED and its steps keep
their slots in the `gpu` / `image_models` pools, so every later run waits on its first pooled step forever, and the
automation sensor, which does not start a run while one is in progress, skips forever. Dagster's run monitoring
cannot see this for runs launched in-process (`dagster job execute`, the default launcher), so maskops looks for
itself: every event of a run records the pid of the process that wrote it; a run in progress whose processes have all
exited (on this machine) is dead. `sweep()` marks it failed and frees its slots; the `stuck_runs` sensor runs it every
minute under `maskops ui`, `maskops demo` runs it first, and `maskops runs` shows and sweeps by hand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.storage.dagster_run import FINISHED_STATUSES, RunsFilter

IN_PROGRESS = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
# a process may start a moment before its first event is written; pid reuse needs a process younger than that
START_SLACK_S = 5.0


@dataclass(frozen=True)
class PoolWait:
    """A step waiting for a pool slot, and who holds the pool's slots."""

    pool: str
    run_id: str
    step_key: str
    holders: tuple[tuple[str, str], ...]  # (run_id, step_key) of every claimed slot

    @property
    def held_by_other_runs(self) -> bool:
        """Whether another run holds the pool (steps of one run queueing on its pool is normal)."""
        return any(run_id != self.run_id for run_id, _ in self.holders)

    def describe(self) -> str:
        held = ", ".join(f"run {run_id[:8]} step {step}" for run_id, step in self.holders) or "nobody (is the pool's limit 0?)"
        return (f"step {self.step_key} of run {self.run_id[:8]} waits for a slot of pool {self.pool!r}, held by {held}; "
                "if that run is dead (killed), `maskops runs --sweep` marks it failed and frees the slot")  # fmt: skip


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def _process_started(pid: int) -> float | None:
    """When the process started (Linux /proc), or None where that cannot be told."""
    boot = _boot_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if boot is None else boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _looks_like_a_run_worker(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").lower()
    except OSError:
        return True  # cannot tell: never call a live run dead on a guess
    return b"python" in command or b"dagster" in command


def process_alive(pid: int, seen_at: float) -> bool:
    """Whether the process that wrote an event at `seen_at` (epoch seconds) still runs (not a later one with its pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    started = _process_started(pid)
    if started is not None and started > seen_at + START_SLACK_S and not _looks_like_a_run_worker(pid):
        return False  # the pid was reused by another program, born after the event (a clock step alone is not enough)
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead
    except OSError:
        return True


def run_processes(instance: dg.DagsterInstance, run_id: str) -> dict[int, float]:
    """pid -> the latest time an event of the run came from it."""
    pids: dict[int, float] = {}
    for record in instance.get_records_for_run(run_id, limit=100_000).records:
        event = record.event_log_entry
        if event.dagster_event is not None and event.dagster_event.pid:
            pids[event.dagster_event.pid] = max(pids.get(event.dagster_event.pid, 0.0), event.timestamp)
    return pids


def _dead_pids(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[int]:
    """The run's recorded processes when every one of them is gone; [] while one lives or none is recorded."""
    pids = run_processes(instance, run.run_id)
    return [] if not pids or any(process_alive(pid, seen) for pid, seen in pids.items()) else sorted(pids)


def _dead_runs_and_pids(instance: dg.DagsterInstance) -> list[tuple[dg.DagsterRun, list[int]]]:
    runs = instance.get_runs(RunsFilter(statuses=IN_PROGRESS))
    return [(run, gone) for run in runs if (gone := _dead_pids(instance, run))]


def dead_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Runs in progress none of whose processes is alive on this machine (runs with no recorded process are left alone)."""
    return [run for run, _ in _dead_runs_and_pids(instance)]


def live_run_ids(instance: dg.DagsterInstance, check_processes: bool = True) -> set[str]:
    """Ids of the runs in progress, read once, less those whose processes are all gone (`check_processes`: only where
    runs execute on this machine, i.e. the local profile; elsewhere a run's pids mean nothing here)."""
    runs = instance.get_runs(RunsFilter(statuses=IN_PROGRESS))
    return {run.run_id for run in runs if not (check_processes and _dead_pids(instance, run))}


def sweep(instance: dg.DagsterInstance) -> list[str]:
    """Mark dead runs failed and free every slot held by a run that is not in progress; what was done, a line each."""
    done = []
    for run, gone in _dead_runs_and_pids(instance):
        pids = ", ".join(map(str, gone))
        instance.report_run_failed(run, f"maskops: the run's processes ({pids}) are gone (killed or crashed); marked failed "
                                        "and its pool slots freed. Re-execute it (from failure) to resume.")  # fmt: skip
        done.append(f"run {run.run_id} ({run.job_name}): processes {pids} gone, marked failed")
    holding = (
        instance.event_log_storage.get_concurrency_run_ids() if instance.event_log_storage.supports_global_concurrency_limits else set()
    )
    if holding:
        finished = instance.get_runs(RunsFilter(run_ids=list(holding), statuses=list(FINISHED_STATUSES)))
        for run in finished:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            done.append(f"run {run.run_id} ({run.status.value}): pool slots freed")
    return done


def pool_waits(instance: dg.DagsterInstance) -> list[PoolWait]:
    """Every step now waiting for a pool slot."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    waits = []
    for pool in sorted(storage.get_concurrency_keys()):
        info = storage.get_concurrency_info(pool)
        holders = tuple((slot.run_id, slot.step_key) for slot in info.claimed_slots)
        waits += [PoolWait(pool, step.run_id, step.step_key, holders) for step in info.pending_steps if step.assigned_timestamp is None]
    return waits
