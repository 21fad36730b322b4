"""The human-edited label files: corrections.csv and exclusions.csv."""

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
