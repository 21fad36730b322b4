"""Where maskops keeps its state, from the environment.

One state folder (MASKOPS_HOME, default ./.maskops) holds the Dagster home, manifests,
the image store, models, reports and the demo data; deleting it resets everything.

    MASKOPS_DATASET      dataset root in the competition layout (default: <home>/demo-data)
    MASKOPS_LABELS       folder with corrections.csv and exclusions.csv (default: <home>/labels);
                         for real data, point it at a folder under version control
    MASKOPS_IMAGE_STORE  image store root, a folder or fsspec URL (default: <home>/images)
    MLFLOW_TRACKING_URI  MLflow tracking store (default: sqlite:///<home>/mlflow.db, artifacts in <home>/mlartifacts)
    MASKOPS_MLFLOW_UI    base URL of an MLflow UI, for links from Dagster to runs (e.g. http://127.0.0.1:5000)
    MASKOPS_OBSERVE_CRON how often the automation looks at the dataset and label files (default every 5 minutes)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class StateFolder:
    """A folder under the state home, read as an attribute of Settings."""

    def __init__(self, relative: str, doc: str):
        self.relative, self.__doc__ = relative, doc

    def __get__(self, settings: Settings | None, owner: type) -> Path | StateFolder:
        return settings.home / self.relative if settings is not None else self


@dataclass(frozen=True)
class Settings:
    home: Path
    dataset: Path
    labels: Path
    image_store: str
    mlflow_uri: str
    mlflow_ui: str = ""
    observe_cron: str = "*/5 * * * *"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("MASKOPS_HOME", ".maskops")).expanduser().absolute()
        dataset = Path(env["MASKOPS_DATASET"]).expanduser().absolute() if env.get("MASKOPS_DATASET") else home / "demo-data"
        labels = Path(env["MASKOPS_LABELS"]).expanduser().absolute() if env.get("MASKOPS_LABELS") else home / "labels"
        return cls(
            home=home, dataset=dataset, labels=labels, image_store=env.get("MASKOPS_IMAGE_STORE") or str(home / "images"),
            mlflow_uri=env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}", mlflow_ui=env.get("MASKOPS_MLFLOW_UI", ""),
            observe_cron=env.get("MASKOPS_OBSERVE_CRON") or cls.observe_cron,
        )  # fmt: skip

    dagster_home = StateFolder("dagster", "Dagster's home: dagster.yaml, runs, asset history.")
    manifests = StateFolder("manifests", "Parquet manifests of the dataset assets.")
    reports = StateFolder("reports", "Data-quality reports.")
    figures = StateFolder("reports/figures", "Charts, confusion matrices and contact sheets that asset metadata links to.")
    mlflow_artifacts = StateFolder("mlartifacts", "Artifacts of the local MLflow store.")
    checkpoints = StateFolder("checkpoints", "Training checkpoints, so an interrupted run resumes.")
    records = StateFolder("records", "Small JSON records of the model assets.")
    submissions = StateFolder("submissions", "submission.csv.")
    models = StateFolder("models", "Model files provisioned offline (rembg's U2NET_HOME).")

    def environment(self) -> dict[str, str]:
        """Variables for child processes (dagster CLI, webserver) so they see the same state."""
        return {
            "MASKOPS_HOME": str(self.home),
            "MASKOPS_DATASET": str(self.dataset),
            "MASKOPS_LABELS": str(self.labels),
            "MASKOPS_IMAGE_STORE": self.image_store,
            "MLFLOW_TRACKING_URI": self.mlflow_uri,
            "MASKOPS_MLFLOW_UI": self.mlflow_ui,
            "MASKOPS_OBSERVE_CRON": self.observe_cron,
            "DAGSTER_HOME": str(self.dagster_home),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "GX_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
