"""Face detection with MTCNN (facenet-pytorch; its weights ship inside the wheel), batched."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from maskops.cpus import torch_threads
from maskops.options import option

log = logging.getLogger(__name__)


class Lazy:
    """Builds an expensive model on first use, so steps with nothing to do never load it."""

    def __init__(self, factory):
        self._factory = factory
        self._model = None

    def __getattr__(self, name: str):
        if self._model is None:
            self._model = self._factory()
        return getattr(self._model, name)


@dataclass(frozen=True)
class DetectorConfig:
    """MTCNN's settings: they change which faces are found, so they are part of every cache key that uses them."""

    thresholds: tuple[float, float, float] = option((0.6, 0.7, 0.7), "P-Net, R-Net and O-Net thresholds.")
    min_face_size: int = option(20, "Smallest face side MTCNN looks for, in pixels.")


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    prob: float
    landmarks: np.ndarray  # (5, 2): left eye, right eye, nose, left mouth corner, right mouth corner


class FaceDetector:
    """MTCNN that takes many images at once and batches those of the same size."""

    def __init__(self, config: DetectorConfig = DetectorConfig(), device: str = "cpu", threads: int = 0):
        from facenet_pytorch import MTCNN

        torch_threads(threads)  # 0: the process's budget (maskops.cpus), not every core of the machine
        self.config, self.device = config, device
        self._mtcnn = MTCNN(keep_all=True, device=device, thresholds=list(config.thresholds), min_face_size=config.min_face_size,
                            post_process=False)  # fmt: skip

    def detect(self, images: Sequence[Image.Image | np.ndarray]) -> list[Face | None]:
        """The most probable face of each image, or None where there is none — or where MTCNN cannot look: an image
        smaller than `min_face_size` (MTCNN's image pyramid is empty and it raises) or one it fails on. A failure
        stays with its image; the others of its batch keep their faces."""
        arrays = [np.asarray(img.convert("RGB") if isinstance(img, Image.Image) else img) for img in images]
        by_size: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, arr in enumerate(arrays):
            if self.searchable(arr.shape):
                by_size[arr.shape].append(i)
        faces: list[Face | None] = [None] * len(arrays)
        for indices in by_size.values():
            try:
                found = self._detect(np.stack([arrays[i] for i in indices]))
            except Exception:  # one bad image must not cost its batch: look again one by one
                found = [self._detect_one(arrays[i]) for i in indices]
            for i, face in zip(indices, found, strict=True):
                faces[i] = face
        return faces

    def searchable(self, shape: tuple[int, ...]) -> bool:
        """Whether MTCNN can search an image of this (H, W, 3) shape: at least `min_face_size` on each side."""
        return len(shape) == 3 and shape[2] == 3 and min(shape[0], shape[1]) >= self.config.min_face_size

    def _detect_one(self, array: np.ndarray) -> Face | None:
        try:
            return self._detect(array[None])[0]
        except Exception as exc:
            log.warning("MTCNN failed on a %sx%s image (%s: %s); no face for it", array.shape[1], array.shape[0], type(exc).__name__, exc)
            return None

    def _detect(self, batch: np.ndarray) -> list[Face | None]:
        boxes, probs, points = self._mtcnn.detect(batch, landmarks=True)
        faces: list[Face | None] = []
        for b, p, pts in zip(boxes, probs, points, strict=True):
            if b is None or len(b) == 0:
                faces.append(None)
                continue
            best = int(np.nanargmax(p))
            faces.append(Face(tuple(float(v) for v in b[best]), float(p[best]), np.asarray(pts[best], dtype=float)))
        return faces
