"""MLflow through the tracking service, the compute device, and where submissions go."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

if TYPE_CHECKING:
    from tracking.service import TrackingService


class MlflowTracking(dg.ConfigurableResource):
    """An MLflow tracking store and model registry (SQLite by default; PostgreSQL or a server by URI)."""

    tracking_uri: str = Field(description="e.g. sqlite:///.maskops/mlflow.db, postgresql://..., http://127.0.0.1:5000")
    registry_uri: str = Field(default="", description="Defaults to the tracking URI.")
    artifact_root: str = Field(default="", description="Where new experiments keep artifacts (a folder or URL).")
    experiment: str = Field(default="maskops")
    ui_url: str = Field(
        default="",
        description="Base URL of the MLflow UI that asset metadata links to (MASKOPS_MLFLOW_UI). Empty: a tracking server's own "
        "address, or for a local store http://127.0.0.1:5000, where `maskops mlflow-ui` serves it.",
    )
    dagster_ui_url: str = Field(
        default="http://127.0.0.1:3000",
        description="Base URL of the Dagster UI that MLflow runs link back to (tag dagster.run_url, run description); empty: no links.",
    )

    def service(self) -> TrackingService:
        from tracking.service import TrackingService  # imported when used: the code location loads without MLflow

        return TrackingService(self.tracking_uri, self.registry_uri, self.artifact_root, self.experiment, self.ui_url, self.dagster_ui_url)

    def run_link(self, run) -> dg.MetadataValue:
        """A clickable link to the run's page in the MLflow UI (text saying where it is when no UI is known)."""
        return _link(run.link)

    def version_link(self, name: str, version: str) -> dg.MetadataValue:
        """A clickable link to a registered version's page in the MLflow UI (its models:/ URI when no UI is known)."""
        from tracking.service import ui_url_for, version_link

        return _link(version_link(ui_url_for(self.tracking_uri, self.ui_url), name, version))


def _link(target: str) -> dg.MetadataValue:
    return dg.MetadataValue.url(target) if target.startswith(("http://", "https://")) else dg.MetadataValue.text(target)


class Compute(dg.ConfigurableResource):
    """Where training runs and keeps its checkpoints."""

    device: str = Field(default="auto", description="'auto' (CUDA when present), 'cpu' or 'cuda:N'.")
    checkpoints_dir: str = Field(description="Per-run checkpoints, so an interrupted training resumes.")
    threads: int = Field(
        default=0,
        description="Torch CPU threads (0: the process's budget, maskops.cpus: MASKOPS_THREADS, else torch's default capped at the usable CPUs).",
    )

    def apply_threads(self) -> None:
        from maskops.cpus import torch_threads

        torch_threads(self.threads)


class SubmissionStore(dg.ConfigurableResource):
    """Where submission CSVs are written."""

    folder: str = Field(description="Folder for submission.csv.")
