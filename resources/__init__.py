"""Dagster resources and IO managers, built from maskops settings."""

from maskops.settings import Settings
from resources.dataset import CompetitionDataset
from resources.io_managers import ManifestIOManager


def build_resources(settings: Settings) -> dict[str, object]:
    """The resources of the local (SQLite, local folders) profile."""
    return {
        "dataset": CompetitionDataset(root=str(settings.dataset)),
        "manifest_io_manager": ManifestIOManager(base_path=str(settings.manifests)),
    }


__all__ = ["CompetitionDataset", "ManifestIOManager", "build_resources"]
