"""Training data: crops decoded and resized once into memory, light augmentation on tensors,
a class-balancing sampler on training only. Validation and test are deterministic."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset, WeightedRandomSampler

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def decode_all(paths: list[str], open_image: Callable[[str], Image.Image], size: int, workers: int = 4) -> torch.Tensor:
    """(N, 3, size, size) uint8: every image decoded and resized once."""

    def load(path: str) -> np.ndarray:
        return np.asarray(open_image(path).convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.uint8)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        arrays = list(pool.map(load, paths))
    if not arrays:
        return torch.empty((0, 3, size, size), dtype=torch.uint8)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def normalize(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float, ImageNet mean/std."""
    return (batch.float() / 255.0 - MEAN.to(batch.device)) / STD.to(batch.device)


class Augment:
    """Random horizontal flip, small scale/shift, brightness and contrast jitter, on uint8 tensors."""

    def __init__(self, flip: bool = True, scale: float = 0.1, jitter: float = 0.2):
        self.flip, self.scale, self.jitter = flip, scale, jitter

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        img = image.float()
        if self.flip and torch.rand((), generator=generator) < 0.5:
            img = img.flip(-1)
        if self.scale:
            _, h, w = img.shape
            s = 1 - self.scale * torch.rand((), generator=generator).item()
            ch, cw = max(1, int(h * s)), max(1, int(w * s))
            top = int(torch.randint(0, h - ch + 1, (), generator=generator))
            left = int(torch.randint(0, w - cw + 1, (), generator=generator))
            img = torch.nn.functional.interpolate(
                img[None, :, top : top + ch, left : left + cw], size=(h, w), mode="bilinear", align_corners=False
            )[0]
        if self.jitter:
            b = 1 + self.jitter * (2 * torch.rand((), generator=generator).item() - 1)
            c = 1 + self.jitter * (2 * torch.rand((), generator=generator).item() - 1)
            mean = img.mean()
            img = (img - mean) * c + mean * b
        return img.clamp(0, 255).to(torch.uint8)


class CropDataset(Dataset):
    """Cached uint8 crops and their class ids; augmentation (training only) uses its own seeded generator."""

    def __init__(self, images: torch.Tensor, labels: np.ndarray, augment: Augment | None = None, seed: int = 0):
        self.images = images
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self.augment = augment
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[i]
        if self.augment is not None:
            image = self.augment(image, self.generator)
        return image, self.labels[i]


def balanced_sampler(labels: np.ndarray, seed: int) -> WeightedRandomSampler:
    """Each image weighted 1 / (images of its class): every class drawn about equally often."""
    labels = np.asarray(labels, dtype=int)
    counts = np.bincount(labels, minlength=18)
    weights = 1.0 / counts[labels]
    return WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), num_samples=len(labels), replacement=True,
                                 generator=torch.Generator().manual_seed(seed))  # fmt: skip


def class_counts(labels: pd.Series | np.ndarray) -> list[int]:
    return np.bincount(np.asarray(labels, dtype=int), minlength=18).tolist()
