"""Training data: crops decoded and resized once into memory (onto the GPU when training there), augmentation and
class-balanced sampling on whole batches on that device, training only. Validation and test are deterministic."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from PIL import Image

from maskops.crop import CropRecipeError, recipe_of
from maskops.labels import NUM_CLASSES
from maskops.splits import TRAIN, VALIDATION, assign_split

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


_CONSTANTS: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}


def normalize(batch: torch.Tensor) -> torch.Tensor:
    """uint8 or float 0..255 (N, 3, H, W) -> float, ImageNet mean/std. The constants are copied to a device once:
    a copy from pageable host memory per batch would make the host wait for the GPU at every step."""
    if batch.device not in _CONSTANTS:
        _CONSTANTS[batch.device] = (MEAN.to(batch.device), STD.to(batch.device))
    mean, std = _CONSTANTS[batch.device]
    return (batch.float() / 255.0 - mean) / std


class Augment:
    """Random horizontal flip, small zoom and shift, brightness and contrast jitter, and optionally greyscale, blur and
    low resolution for a share of the images — on a whole uint8 batch at once (one affine resampling call), with every random number
    drawn on the batch's device by a generator that lives there: no host round trip, and a CPU generator with a CUDA
    batch is refused rather than mixed. Greyscale, blur and low resolution draw nothing when their share is 0, so the random stream
    (and a seeded run) is what it was without them."""

    def __init__(
        self, flip: bool = True, scale: float = 0.1, jitter: float = 0.2, grey: float = 0.0, blur: float = 0.0, lowres: float = 0.0
    ):
        self.flip, self.scale, self.jitter, self.grey, self.blur, self.lowres = flip, scale, jitter, grey, blur, lowres

    def __call__(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> float (N, 3, H, W) in 0..255."""
        device = batch.device
        if generator.device.type != device.type:
            raise ValueError(
                f"the augmentation's generator is on {generator.device} but the batch on {device}: create it with torch.Generator(device=...)"
            )
        x = batch.float()
        n = x.shape[0]

        def uniform(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=generator, device=device)

        if self.flip:
            x = torch.where((uniform(n) < 0.5)[:, None, None, None], x.flip(-1), x)
        if self.scale:
            s = 1 - self.scale * uniform(n)
            theta = torch.zeros(n, 2, 3, device=device)
            theta[:, 0, 0], theta[:, 1, 1] = s, s
            theta[:, :, 2] = (1 - s)[:, None] * (2 * uniform(n, 2) - 1)
            grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
            x = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if self.jitter:
            brightness = 1 + self.jitter * (2 * uniform(n, 1, 1, 1) - 1)
            contrast = 1 + self.jitter * (2 * uniform(n, 1, 1, 1) - 1)
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * contrast + mean * brightness
        if self.grey:  # ITU-R 601 luma in every channel (python scalars: no constant tensor to copy to the device)
            luma = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)
            x = torch.where((uniform(n) < self.grey)[:, None, None, None], luma, x)
        if self.blur:  # a box blur about a 40th of the side wide: an enlarged or out-of-focus photo
            k = 2 * max(1, x.shape[-1] // 40) + 1
            blurred = torch.nn.functional.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=False)
            x = torch.where((uniform(n) < self.blur)[:, None, None, None], blurred, x)
        if self.lowres:  # shrunk to a quarter of the side and enlarged back: a small or far face, a low-resolution camera
            h, w = x.shape[-2:]
            small = torch.nn.functional.interpolate(x, size=(max(1, h // 4), max(1, w // 4)), mode="area")
            coarse = torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
            x = torch.where((uniform(n) < self.lowres)[:, None, None, None], coarse, x)
        return x.clamp(0, 255)


class EpochSampler:
    """Which training images an epoch visits, drawn on the images' device: weighted (1 / images of the class, with
    replacement, so every class comes about equally often; each mask-only label, maskops.labels.MASK_ONLY + mask, counts
    as a class of its own) or a shuffle. Seeded; its state goes into checkpoints."""

    def __init__(self, labels: torch.Tensor, kind: str, seed: int):
        if kind not in ("weighted", "shuffle"):
            raise ValueError(f"sampler must be 'weighted' or 'shuffle', got {kind!r}")
        self.kind, self.n, self.device = kind, len(labels), labels.device
        counts = torch.bincount(labels, minlength=18).double()
        self.weights = (1.0 / counts)[labels] if kind == "weighted" else None
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def epoch(self) -> torch.Tensor:
        if self.weights is not None:
            return torch.multinomial(self.weights, self.n, replacement=True, generator=self.generator)
        return torch.randperm(self.n, generator=self.generator, device=self.device)


def class_counts(labels: pd.Series | np.ndarray) -> list[int]:
    """Images per class of the 18; mask-only labels (maskops.labels.MASK_ONLY + mask) are not a class and not counted."""
    labels = np.asarray(labels, dtype=int)
    return np.bincount(labels[labels < NUM_CLASSES], minlength=NUM_CLASSES).tolist()


@dataclass
class TrainingData:
    """A variant's training people and the shared validation people, their crops decoded once."""

    train: pd.DataFrame
    val: pd.DataFrame
    train_images: torch.Tensor
    val_images: torch.Tensor
    crop_recipe: str  # JSON of the CropRecipe both sets were cropped with

    @property
    def train_labels(self) -> np.ndarray:
        """Class ids, and mask-only labels (maskops.labels.MASK_ONLY + mask) for photos whose mask state alone is known."""
        return self.train["class_id"].to_numpy()

    @property
    def mask_only_images(self) -> int:
        return int((self.train["class_id"] >= NUM_CLASSES).sum())

    @property
    def val_labels(self) -> np.ndarray:
        return self.val["class_id"].to_numpy()


def with_crops(crops: pd.DataFrame) -> pd.DataFrame:
    """The rows that have a crop (unreadable images have none)."""
    return crops[crops["crop_path"].notna()].reset_index(drop=True)


def validation_rows(crops: pd.DataFrame, split: pd.DataFrame) -> pd.DataFrame:
    """The crops of the validation people, in image_id order (the same rows for every model)."""
    usable = assign_split(with_crops(crops), split)
    return usable[usable["role"] == VALIDATION].sort_values("image_id").reset_index(drop=True)


def training_data(
    crops: pd.DataFrame,
    validation_crops: pd.DataFrame,
    split: pd.DataFrame,
    open_image: Callable[[str], Image.Image],
    size: int,
    mask_only_crops: pd.DataFrame | None = None,
) -> TrainingData:
    """Training rows of `crops` and validation rows of `validation_crops` (the best labels), decoded at `size`.
    Both must come from the same crop recipe: a model is validated on crops made as its training crops were.
    `mask_only_crops` (photos whose mask state alone is known; maskops.labels.MASK_ONLY) join the training rows,
    cropped the same way too; they never validate."""
    recipe = recipe_of(crops, "the training crops")
    if recipe_of(validation_crops, "the validation crops") != recipe:
        raise CropRecipeError(
            "the training and the validation crops were made with different crop settings; materialize both cropped assets with "
            "the same settings"
        )
    train = assign_split(with_crops(crops), split)
    train = train[train["role"] == TRAIN].reset_index(drop=True)
    extra = with_crops(mask_only_crops) if mask_only_crops is not None else pd.DataFrame()
    if len(extra):
        if recipe_of(extra, "mask_only_crops") != recipe:
            raise CropRecipeError(
                "mask_only_crops was made with other crop settings than the training crops; materialize mask_only_crops with the "
                "same crop settings as the variants' crops (or train with mask_only_photos: false)"
            )
        train = pd.concat([train, extra.assign(role=TRAIN)], ignore_index=True)
    val = validation_rows(validation_crops, split)
    return TrainingData(train, val, decode_all(list(train["crop_path"]), open_image, size),
                        decode_all(list(val["crop_path"]), open_image, size), recipe.to_json())  # fmt: skip
