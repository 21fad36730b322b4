"""Dagster resources and IO managers, built from maskops settings."""

from maskops.settings import Settings
from resources.dataset import CompetitionDataset
from resources.images import BackgroundRemoverResource, FaceDetectorResource, ImageStoreResource
from resources.io_managers import ManifestIOManager
from resources.labels import LabelFiles
from resources.quality import DataQuality


def build_resources(settings: Settings) -> dict[str, object]:
    """The resources of the local (SQLite, local folders) profile."""
    return {
        "dataset": CompetitionDataset(root=str(settings.dataset)),
        "manifest_io_manager": ManifestIOManager(base_path=str(settings.manifests)),
        "labels": LabelFiles(folder=str(settings.labels)),
        "image_store": ImageStoreResource(root=settings.image_store),
        "face_detector": FaceDetectorResource(),
        "background_remover": BackgroundRemoverResource(models_dir=str(settings.models)),
        "data_quality": DataQuality(gx_project_dir=str(settings.home / "gx"), reports_dir=str(settings.reports / "quality")),
    }


__all__ = [
    "BackgroundRemoverResource",
    "CompetitionDataset",
    "DataQuality",
    "FaceDetectorResource",
    "ImageStoreResource",
    "LabelFiles",
    "ManifestIOManager",
    "build_resources",
]
