"""A content-addressed image store: every derived image is kept under a key that says what made it.

key = sha256(source content hash, stage, parameters, code version), so the same input
processed the same way is computed once and shared by every variant and every later run.
An entry is an image file plus a JSON record; the record is written last, so an entry
whose record exists is complete (an interrupted run simply redoes the missing ones).
The root is a local folder or any fsspec/UPath URL.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from upath import UPath

from maskops.files import write_atomic
from maskops.pixels import upright_rgb

STORE_PREFIX = "store:"


@dataclass
class StoreWork:
    """Derived images a stage computed now (`processed`) and found already in the image store (`reused`)."""

    processed: int = 0
    reused: int = 0


def derive_key(source: str, stage: str, params: Mapping[str, Any], code_version: str) -> str:
    """The key of `source` processed by `stage` with `params` at `code_version`."""
    blob = json.dumps({"source": source, "stage": stage, "params": params, "code": code_version}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class ImageStore:
    """Images and their records under <root>/<key[:2]>/<key>.<ext> and <key>.json."""

    def __init__(self, root: str | os.PathLike, image_ext: str = ".jpg"):
        self.root = UPath(root)
        self.image_ext = image_ext
        self._local = getattr(self.root, "protocol", "") in ("", "file", "local")

    def _path(self, key: str, ext: str) -> UPath:
        return self.root / key[:2] / f"{key}{ext}"

    def uri(self, key: str) -> str:
        """How manifests refer to a stored image."""
        return f"{STORE_PREFIX}{key}"

    def has(self, key: str) -> bool:
        return self._path(key, ".json").exists()

    def record(self, key: str) -> dict[str, Any]:
        return json.loads(self._path(key, ".json").read_text())

    def image_bytes(self, key: str) -> bytes:
        return self._path(key, self.image_ext).read_bytes()

    def open(self, key: str) -> Image.Image:
        return Image.open(io.BytesIO(self.image_bytes(key)))

    def local_path(self, key: str) -> Path | None:
        """The image's file on this machine, if the store is local."""
        return Path(self._path(key, self.image_ext).path) if self._local else None

    def put(self, key: str, image: bytes, record: Mapping[str, Any]) -> None:
        """Store an image and its record; the record goes last and marks the entry complete."""
        write_atomic(self._path(key, self.image_ext), image)
        write_atomic(self._path(key, ".json"), json.dumps(dict(record), sort_keys=True, default=str))


def encode_jpeg(image: Image.Image, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


class ImageSource:
    """Opens a manifest's `path`: relative to the dataset root, or `store:<key>`."""

    def __init__(self, dataset_root: str | os.PathLike, store: ImageStore | None = None):
        self.dataset_root = Path(dataset_root)
        self.store = store

    def read_bytes(self, path: str) -> bytes:
        if path.startswith(STORE_PREFIX):
            if self.store is None:
                raise ValueError(f"{path} is in the image store, but this source has none")
            return self.store.image_bytes(path[len(STORE_PREFIX) :])
        return (self.dataset_root / path).read_bytes()

    def open_rgb(self, path: str) -> Image.Image:
        """The photo as upright 8-bit RGB (maskops.pixels.upright_rgb: what serving decodes too)."""
        with Image.open(io.BytesIO(self.read_bytes(path))) as img:
            return upright_rgb(img)
