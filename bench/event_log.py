"""How much one pipeline run writes to Dagster's event log, now that pictures are files linked from metadata.

    make demo && .venv/bin/python bench/event_log.py

- event_log_bytes: the serialized events of the latest maskops_pipeline run, against the same events with every
  linked PNG inlined as base64 markdown, as they were before (measured in the same run, from the same files).
- run_database_bytes: the size of that run's SQLite event-log file on disk (local instances only), no baseline.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit

from maskops.settings import Settings


def main() -> None:
    import dagster as dg
    from dagster._serdes import serialize_value

    settings = Settings.from_env()
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    runs = instance.get_runs(dg.RunsFilter(job_name="maskops_pipeline", statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1)
    if not runs:
        raise SystemExit(f"no successful maskops_pipeline run in {settings.dagster_home}: run `make demo` first")
    run = runs[0]
    events = instance.all_logs(run.run_id)
    size = sum(len(serialize_value(e)) for e in events)
    figures = [
        Path(value.path)
        for e in events
        if e.is_dagster_event and e.dagster_event.is_step_materialization
        for value in e.dagster_event.step_materialization_data.materialization.metadata.values()
        if isinstance(value, dg.PathMetadataValue) and value.path.endswith(".png") and Path(value.path).exists()
    ]
    inlined = size + sum(len("![figure](data:image/png;base64,)") + len(base64.b64encode(p.read_bytes())) for p in figures)
    emit("event_log_bytes", size, "bytes", baseline=inlined, n=len(events), figures_linked=len(figures), run_id=run.run_id)
    database = settings.dagster_home / "history" / "runs" / f"{run.run_id}.db"
    if database.exists():
        emit("run_database_bytes", database.stat().st_size, "bytes", n=len(events), path=str(database))


if __name__ == "__main__":
    main()
