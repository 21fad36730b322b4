"""Where the pictures of asset metadata live: files written once, linked from the event log, never inlined in it."""

from __future__ import annotations

import hashlib

import dagster as dg
from pydantic import Field
from upath import UPath

from maskops.files import slug, write_atomic


class ReportFiles(dg.ConfigurableResource):
    """A folder (or URL) of PNG files named by their content, so a re-run that draws the same picture writes nothing new."""

    folder: str = Field(description="Folder or URL for charts, confusion matrices and contact sheets.")

    def figure(self, asset: str, name: str, png: bytes) -> dg.MetadataValue:
        path = UPath(self.folder) / slug(asset) / f"{slug(name)}-{hashlib.sha256(png).hexdigest()[:12]}.png"
        if not path.exists():
            write_atomic(path, png)
        return dg.MetadataValue.path(str(path))
