"""The dataset in the competition layout that the pipeline starts from."""

import dagster as dg
from pydantic import Field

from maskops.layout import Layout, scan_competition


class CompetitionDataset(dg.ConfigurableResource):
    """A folder holding train/ (train.csv, images/) and optionally eval/ (info.csv, images/)."""

    root: str = Field(description="Dataset root in the competition layout; read only, never modified.")
    scan_workers: int = Field(default=0, description="Threads for hashing and decoding images (0: automatic).")

    def scan(self) -> Layout:
        return scan_competition(self.root, workers=self.scan_workers or None)
