"""The Dagster instance the pipeline runs on: dagster.yaml in the state folder, written before Dagster first starts."""

from __future__ import annotations

from pathlib import Path

from maskops.files import write_atomic
from maskops.settings import Settings

HEADER = "# Written by maskops. Delete this line to keep your own edits; otherwise maskops keeps it up to date."
DAGSTER_YAML = f"""\
{HEADER}
telemetry:
  enabled: false
concurrency:
  pools:
    # Steps that run image models (crops, generation, training) take both cores: one at a time.
    default_limit: 1
"""


def ensure_dagster_home(settings: Settings) -> Path:
    """Create (or update our own) dagster.yaml, with telemetry off; a file without our header is the user's and stays."""
    config = settings.dagster_home / "dagster.yaml"
    current = config.read_text() if config.exists() else None
    if current is None or (current.startswith(HEADER) and current != DAGSTER_YAML):
        write_atomic(config, DAGSTER_YAML)
    return settings.dagster_home
