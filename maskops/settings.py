"""Where maskops keeps its state, from the environment.

One state folder (MASKOPS_HOME, default ./.maskops) holds the Dagster home, manifests,
the image store, models, reports and the demo data; deleting it resets everything.

    MASKOPS_DATASET      dataset root in the competition layout (default: <home>/demo-data)
    MASKOPS_LABELS       folder with corrections.csv and exclusions.csv (default: <home>/labels);
                         for real data, point it at a folder under version control
    MASKOPS_IMAGE_STORE  image store root, a folder or fsspec URL (default: <home>/images)
    MLFLOW_TRACKING_URI  MLflow tracking store (default: sqlite:///<home>/mlflow.db, artifacts in <home>/mlartifacts)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DAGSTER_HEADER = "# Written by maskops. Delete this line to keep your own edits; otherwise maskops keeps it up to date."
DAGSTER_YAML = f"""\
{DAGSTER_HEADER}
telemetry:
  enabled: false
concurrency:
  pools:
    # Steps that run image models (crops, generation, training) take both cores: one at a time.
    default_limit: 1
"""


@dataclass(frozen=True)
class Settings:
    home: Path
    dataset: Path
    labels: Path
    image_store: str
    mlflow_uri: str

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("MASKOPS_HOME", ".maskops")).expanduser().absolute()
        dataset = Path(env["MASKOPS_DATASET"]).expanduser().absolute() if env.get("MASKOPS_DATASET") else home / "demo-data"
        labels = Path(env["MASKOPS_LABELS"]).expanduser().absolute() if env.get("MASKOPS_LABELS") else home / "labels"
        return cls(
            home=home, dataset=dataset, labels=labels, image_store=env.get("MASKOPS_IMAGE_STORE") or str(home / "images"),
            mlflow_uri=env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}",
        )  # fmt: skip

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def manifests(self) -> Path:
        return self.home / "manifests"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.home / "mlartifacts"

    @property
    def checkpoints(self) -> Path:
        return self.home / "checkpoints"

    @property
    def records(self) -> Path:
        return self.home / "records"

    @property
    def submissions(self) -> Path:
        return self.home / "submissions"

    @property
    def models(self) -> Path:
        """Model files provisioned offline (rembg's U2NET_HOME)."""
        return self.home / "models"

    def environment(self) -> dict[str, str]:
        """Variables for child processes (dagster CLI, webserver) so they see the same state."""
        return {
            "MASKOPS_HOME": str(self.home),
            "MASKOPS_DATASET": str(self.dataset),
            "MASKOPS_LABELS": str(self.labels),
            "MASKOPS_IMAGE_STORE": self.image_store,
            "MLFLOW_TRACKING_URI": self.mlflow_uri,
            "DAGSTER_HOME": str(self.dagster_home),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "GX_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }

    def ensure_dagster_home(self) -> Path:
        """Create (or update our own) dagster.yaml, with telemetry off, before Dagster first starts."""
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        config = self.dagster_home / "dagster.yaml"
        if not config.exists() or (config.read_text().startswith(DAGSTER_HEADER) and config.read_text() != DAGSTER_YAML):
            tmp = config.with_suffix(".yaml.tmp")
            tmp.write_text(DAGSTER_YAML)
            os.replace(tmp, config)
        return self.dagster_home
