"""Dagster resources and IO managers, built from one Settings object (the environment)."""

from maskops.settings import Settings
from resources.dataset import CompetitionDataset
from resources.images import BackgroundRemoverResource, FaceDetectorResource, ImageStoreResource
from resources.io_managers import ManifestIOManager, RecordIOManager
from resources.labels import LabelFiles
from resources.quality import DataQuality
from resources.reports import ReportFiles
from resources.tracking import Compute, MlflowTracking, SubmissionStore


def build_resources(settings: Settings) -> dict[str, object]:
    """The resources of the profile: local folders and SQLite, or (production) the object store and the tracking server."""
    return {
        "dataset": CompetitionDataset(root=str(settings.dataset)),
        "manifest_io_manager": ManifestIOManager(base_path=settings.manifests_location),
        "labels": LabelFiles(folder=str(settings.labels)),
        "image_store": ImageStoreResource(root=settings.image_store),
        "face_detector": FaceDetectorResource(),
        "background_remover": BackgroundRemoverResource(models_dir=str(settings.models), model_path=settings.background_model),
        "data_quality": DataQuality(gx_project_dir=str(settings.home / "gx"), reports_dir=str(settings.reports / "quality")),
        "record_io_manager": RecordIOManager(base_path=settings.records_location),
        # a tracking server decides where artifacts go (proxied); a local store keeps them under <home>/mlartifacts
        "tracking": MlflowTracking(
            tracking_uri=settings.mlflow_uri,
            artifact_root=settings.mlflow_artifact_root,
            ui_url=settings.mlflow_ui,
        ),
        "compute": Compute(checkpoints_dir=str(settings.checkpoints)),
        "submissions": SubmissionStore(folder=str(settings.submissions)),
        "reports": ReportFiles(folder=str(settings.figures)),
    }


__all__ = [
    "BackgroundRemoverResource",
    "CompetitionDataset",
    "Compute",
    "DataQuality",
    "FaceDetectorResource",
    "ImageStoreResource",
    "LabelFiles",
    "ManifestIOManager",
    "MlflowTracking",
    "RecordIOManager",
    "ReportFiles",
    "SubmissionStore",
    "build_resources",
]
