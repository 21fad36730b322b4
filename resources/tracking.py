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
    ui_url: str = Field(default="", description="Base URL of an MLflow UI, for links in asset metadata (e.g. http://127.0.0.1:5000).")

    def service(self) -> TrackingService:
        from tracking.service import TrackingService  # imported when used: the code location loads without MLflow

        return TrackingService(self.tracking_uri, self.registry_uri, self.artifact_root, self.experiment, self.ui_url)

    def run_link(self, run) -> dg.MetadataValue:
        """A clickable link to the run when an MLflow UI is configured, else where to find it."""
        return (dg.MetadataValue.url if self.ui_url else dg.MetadataValue.text)(run.link)


class Compute(dg.ConfigurableResource):
    """Where training runs and keeps its checkpoints."""

    device: str = Field(default="auto", description="'auto' (CUDA when present), 'cpu' or 'cuda:N'.")
    checkpoints_dir: str = Field(description="Per-run checkpoints, so an interrupted training resumes.")
    threads: int = Field(default=0, description="Torch CPU threads (0: leave torch's default).")

    def apply_threads(self) -> None:
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)


class SubmissionStore(dg.ConfigurableResource):
    """Where submission CSVs are written."""

    folder: str = Field(description="Folder for submission.csv.")
