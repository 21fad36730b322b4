"""Face detection with MTCNN (facenet-pytorch; its weights ship inside the wheel), batched."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from maskops.options import option


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
        import torch
        from facenet_pytorch import MTCNN

        if threads:
            torch.set_num_threads(threads)
        self.config, self.device = config, device
        self._mtcnn = MTCNN(keep_all=True, device=device, thresholds=list(config.thresholds), min_face_size=config.min_face_size,
                            post_process=False)  # fmt: skip

    def detect(self, images: Sequence[Image.Image | np.ndarray]) -> list[Face | None]:
        """The most probable face of each image, or None where there is none."""
        arrays = [np.asarray(img.convert("RGB") if isinstance(img, Image.Image) else img) for img in images]
        by_size: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, arr in enumerate(arrays):
            by_size[arr.shape].append(i)
        faces: list[Face | None] = [None] * len(arrays)
        for indices in by_size.values():
            batch = np.stack([arrays[i] for i in indices])
            boxes, probs, points = self._mtcnn.detect(batch, landmarks=True)
            for i, b, p, pts in zip(indices, boxes, probs, points, strict=True):
                if b is None or len(b) == 0:
                    continue
                best = int(np.nanargmax(p))
                faces[i] = Face(tuple(float(v) for v in b[best]), float(p[best]), np.asarray(pts[best], dtype=float))
        return faces
