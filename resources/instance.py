"""The Dagster instance the pipeline runs on: dagster.yaml, written before Dagster first starts.

local       SQLite under <home>/dagster; the steps that use every core (training, image models) share one pool,
            `cores`, one step at a time across all runs (step_pool); slots of dead runs are given back (run
            monitoring, and the stuck_runs sensor: resources.runs).
production  run, event-log and schedule storage on PostgreSQL, a queued run coordinator with tag concurrency
            limits, run monitoring, and pools whose limits `maskops init-instance` sets: `gpu` (training; 1 by
            default) and `image_models` (background removal, face detection, generation, ensemble inference).
"""

from __future__ import annotations

from pathlib import Path

from maskops.files import write_atomic
from maskops.settings import Settings

HEADER = "# Written by maskops. Delete this line to keep your own edits; otherwise maskops keeps it up to date."
GPU_POOL, IMAGE_MODELS_POOL = "gpu", "image_models"
# On one machine's CPU, two steps that each start a thread per core run far slower together than one after the other:
# torch's threads spin for work while the other process holds the cores — two trainings at once kept 0.40-0.52 of
# their speed alone between them, a training beside a background-removal step 0.57-0.72 (bench/concurrency.py). Locally
# every such step therefore waits for the one `cores` slot, whichever run it belongs to.
CORES_POOL = "cores"
POOL_LIMITS_ENV = {GPU_POOL: ("MASKOPS_GPU_SLOTS", 1), IMAGE_MODELS_POOL: ("MASKOPS_IMAGE_MODEL_SLOTS", 2)}
TRIGGER_TAG = "maskops/trigger"

LOCAL_YAML = f"""\
{HEADER}
telemetry:
  enabled: false
run_monitoring:
  # the daemon (maskops ui) gives back pool slots a finished run still holds (a run marked failed by hand);
  # runs killed mid-step are found by the stuck_runs sensor (resources.runs)
  enabled: true
  free_slots_after_run_end_seconds: 30
concurrency:
  pools:
    # Steps that train or run image models take every core: they share the pool `cores`, one step at a time.
    default_limit: 1
"""

PRODUCTION_YAML = f"""\
{HEADER}
telemetry:
  enabled: false
storage:
  postgres:
    postgres_url:
      env: MASKOPS_DAGSTER_POSTGRES_URL
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
run_monitoring:
  enabled: true
  start_timeout_seconds: 300
  max_resume_run_attempts: 0
  poll_interval_seconds: 60
  free_slots_after_run_end_seconds: 30
concurrency:
  runs:
    max_concurrent_runs: 4
    tag_concurrency_limits:
      # one automation- or schedule-triggered retraining at a time; runs people launch are not held back by them
      - key: "{TRIGGER_TAG}"
        limit: 1
  pools:
    default_limit: 2
"""


def dagster_yaml(settings: Settings) -> str:
    return PRODUCTION_YAML if settings.production else LOCAL_YAML


def ensure_dagster_home(settings: Settings) -> Path:
    """Create (or update our own) dagster.yaml for the profile; a file without our header is the user's and stays."""
    config = settings.dagster_home / "dagster.yaml"
    current = config.read_text() if config.exists() else None
    wanted = dagster_yaml(settings)
    if current is None or (current.startswith(HEADER) and current != wanted):
        write_atomic(config, wanted)
    return settings.dagster_home


def step_pool(purpose: str | None, settings: Settings) -> str | None:
    """The pool of a step that trains (GPU_POOL) or runs image models (IMAGE_MODELS_POOL): that pool in production,
    where they run on workers of their own; locally the one pool of the steps that use every core (CORES_POOL)."""
    if purpose is None or settings.production:
        return purpose
    return CORES_POOL


def pool_limits(environ: dict[str, str]) -> dict[str, int]:
    """The production pools' limits: MASKOPS_GPU_SLOTS (default 1), MASKOPS_IMAGE_MODEL_SLOTS (default 2)."""
    return {pool: int(environ.get(name) or default) for pool, (name, default) in POOL_LIMITS_ENV.items()}
