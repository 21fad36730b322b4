"""Where maskops keeps its state, from the environment.

One state folder (MASKOPS_HOME, default ./.maskops) holds the Dagster home, manifests,
reports and the demo data; deleting it resets everything. MASKOPS_DATASET points at the
dataset in the competition layout (default: the demo data inside the state folder).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DAGSTER_YAML = """\
# Written by maskops; edit freely (maskops only creates it when missing).
telemetry:
  enabled: false
"""


@dataclass(frozen=True)
class Settings:
    home: Path
    dataset: Path

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("MASKOPS_HOME", ".maskops")).expanduser().absolute()
        dataset = Path(env["MASKOPS_DATASET"]).expanduser().absolute() if env.get("MASKOPS_DATASET") else home / "demo-data"
        return cls(home=home, dataset=dataset)

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def manifests(self) -> Path:
        return self.home / "manifests"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    def environment(self) -> dict[str, str]:
        """Variables for child processes (dagster CLI, webserver) so they see the same state."""
        return {
            "MASKOPS_HOME": str(self.home),
            "MASKOPS_DATASET": str(self.dataset),
            "DAGSTER_HOME": str(self.dagster_home),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "GX_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }

    def ensure_dagster_home(self) -> Path:
        """Create the Dagster home with telemetry disabled before Dagster first starts."""
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        config = self.dagster_home / "dagster.yaml"
        if not config.exists():
            tmp = config.with_suffix(".yaml.tmp")
            tmp.write_text(DAGSTER_YAML)
            os.replace(tmp, config)
        return self.dagster_home
