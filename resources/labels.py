"""The human-edited label files: corrections.csv and exclusions.csv."""

import hashlib
from pathlib import Path

import dagster as dg
from pydantic import Field


class LabelFiles(dg.ConfigurableResource):
    """A folder holding corrections.csv and exclusions.csv (missing files mean none)."""

    folder: str = Field(description="Folder with corrections.csv and exclusions.csv; keep it under version control.")

    @property
    def corrections(self) -> Path:
        return Path(self.folder) / "corrections.csv"

    @property
    def exclusions(self) -> Path:
        return Path(self.folder) / "exclusions.csv"


def file_version(path: Path) -> str:
    """A label file's data version: a hash of its bytes, or "missing"."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else "missing"
