"""MLflow tracking and registry, and the compute device: resources of our own (dagster-mlflow is legacy)."""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
from pydantic import Field


class MlflowTracking(dg.ConfigurableResource):
    """An MLflow tracking store and model registry (SQLite by default; PostgreSQL or a server by URI)."""

    tracking_uri: str = Field(description="e.g. sqlite:///.maskops/mlflow.db, postgresql://..., http://127.0.0.1:5000")
    registry_uri: str = Field(default="", description="Defaults to the tracking URI.")
    artifact_root: str = Field(default="", description="Where new experiments keep artifacts (a folder or URL).")
    experiment: str = Field(default="maskops")
    ui_url: str = Field(default="", description="Base URL of an MLflow UI, for links in asset metadata (e.g. http://127.0.0.1:5000).")

    def activate(self) -> str:
        """Point the mlflow client at this store; returns the experiment id (created when missing)."""
        import mlflow

        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.registry_uri or self.tracking_uri)
        experiment = mlflow.get_experiment_by_name(self.experiment)
        if experiment is not None:
            return experiment.experiment_id
        location = self.artifact_root or None
        if location and "://" not in location:
            Path(location).mkdir(parents=True, exist_ok=True)
            location = Path(location).absolute().as_uri()
        return mlflow.create_experiment(self.experiment, artifact_location=location)

    @contextlib.contextmanager
    def run(self, run_name: str, tags: dict[str, str]) -> Iterator[object]:
        """An MLflow run in our experiment; ended (FAILED on error) when the block exits."""
        import mlflow

        experiment_id = self.activate()
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as active:
            yield active

    def run_link(self, experiment_id: str, run_id: str) -> str:
        if self.ui_url:
            return f"{self.ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        return f"runs:/{run_id} in {self.tracking_uri} (start an MLflow UI with `maskops mlflow-ui`)"


class Compute(dg.ConfigurableResource):
    """Where training runs and keeps its checkpoints."""

    device: str = Field(default="auto", description="'auto' (CUDA when present), 'cpu' or 'cuda:N'.")
    checkpoints_dir: str = Field(description="Per-run checkpoints, so an interrupted training resumes.")
    threads: int = Field(default=0, description="Torch CPU threads (0: leave torch's default).")


class SubmissionStore(dg.ConfigurableResource):
    """Where submission CSVs are written."""

    folder: str = Field(description="Folder for submission.csv.")
