"""The crop stage: background removal and face crop, computed once per (image, parameters).

As in the original solution: rembg removes the background, MTCNN finds the face and the
crop is its box plus a margin; where no face is found, a centre crop (the documented
fallback) is used. The order of the two steps is configurable and either can be off.
Results live in the image store, so the four dataset variants share them and a re-run
only processes images it has not seen.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from maskops.faces import DetectorConfig, Face, FaceDetector
from maskops.options import as_dict, from_plain, key_params, option
from maskops.store import ImageStore, StoreWork, derive_key, encode_jpeg

CROP_CODE_VERSION = "3"  # 3: photos are turned upright by their EXIF orientation, 16-bit grey scaled (maskops.pixels)
ORDERS = ("background_first", "crop_first")
RECORD_COLUMNS = (
    "content_hash", "crop_key", "crop_path", "crop_recipe", "face_found", "face_prob", "fallback", "box_x0", "box_y0", "box_x1", "box_y1",
)  # fmt: skip


@dataclass(frozen=True)
class CropConfig:
    remove_background: bool = option(True, "Replace the background with background_color (rembg).")
    crop_face: bool = option(True, "Crop to the MTCNN face box plus margin (centre crop when no face).")
    order: str = option("background_first", "'background_first' (as the original) or 'crop_first'.")
    margin: int = option(40, "Pixels added around the MTCNN face box, as in the original.")
    size: int = option(256, "Side of the square output crop.")
    min_face_prob: float = option(0.9, "Faces found with less confidence are not trusted: the centre-crop fallback is used.")
    fallback_fraction: float = option(0.8, "Side of the centre-crop fallback, as a fraction of the shorter image side.")
    background_model: str = option(
        "u2netp", "rembg model provisioned by `maskops fetch-models`, or u2net_custom (the remover's model_path)."
    )
    background_color: tuple[int, int, int] = option((0, 0, 0), "RGB colour that replaces the background.")
    background_resolution: int = option(
        192,
        "Side of the square the background model sees (rembg's is 320): 192 does 0.36 of its work, and its face crops agree "
        "with 320's as closely as 256's do (bench/crop_stage.py, README 'Benchmarks').",
    )
    jpeg_quality: int = option(95, "JPEG quality of the stored crops.")
    batch_size: int = option(8, "Images per MTCNN batch.", in_key=False)

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")
        if not 0 < self.fallback_fraction <= 1 or self.size < 8 or self.margin < 0 or not 0 <= self.min_face_prob <= 1:
            raise ValueError(f"invalid crop settings: {self}")


class CropRecipeError(ValueError):
    """Crops made in different ways were mixed, or a manifest does not say how its crops were made."""


@dataclass(frozen=True)
class CropRecipe:
    """Everything that decides a crop's pixels: the crop settings, the face detector's settings and the
    content of the background model file. The cache key covers all of it."""

    config: CropConfig = field(default_factory=CropConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    background_sha256: str = ""  # of the background model file; required when background removal is on

    def __post_init__(self) -> None:
        if self.config.remove_background and not self.background_sha256:
            raise CropRecipeError("background removal is on but the background model file's sha256 is missing")

    def key_params(self) -> dict[str, Any]:
        params = key_params(self.config)
        if self.config.crop_face:
            params["detector"] = key_params(self.detector)
        if self.config.remove_background:
            params["background_sha256"] = self.background_sha256
        return params

    def to_json(self) -> str:
        return json.dumps({"config": as_dict(self.config), "detector": as_dict(self.detector), "background_sha256": self.background_sha256},
                          sort_keys=True)  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> CropRecipe:
        data = json.loads(text)
        return cls(from_plain(CropConfig, data["config"]), from_plain(DetectorConfig, data["detector"]), data["background_sha256"])


def recipe_of(crops: pd.DataFrame, name: str = "crops") -> CropRecipe:
    """The one recipe a cropped manifest's crops were made with; raises when there are several or none."""
    recipes = crops["crop_recipe"].dropna().unique() if "crop_recipe" in crops.columns else []
    if len(recipes) != 1:
        raise CropRecipeError(
            f"{name} holds crops made with {len(recipes)} different crop settings; re-materialize its cropped asset so that "
            "every crop is made the same way"
        )
    return CropRecipe.from_json(recipes[0])


@dataclass
class CropStats(StoreWork):
    """Distinct images seen; faces found and fallbacks among them."""

    images: int = 0
    faces: int = 0
    fallbacks: int = 0


def crop_box(face: Face | None, width: int, height: int, config: CropConfig) -> tuple[tuple[int, int, int, int], bool]:
    """The square region to cut out, and whether it is the fallback centre crop."""
    if face is not None and face.prob >= config.min_face_prob:
        x0, y0, x1, y1 = face.box
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        side = max(x1 - x0, y1 - y0) + 2 * config.margin
        fallback = False
    else:
        cx, cy = width / 2, height / 2
        side = config.fallback_fraction * min(width, height)
        fallback = True
    side = min(side, width, height)
    left = min(max(cx - side / 2, 0), width - side)
    top = min(max(cy - side / 2, 0), height - side)
    x0, y0 = min(round(left), width - 1), min(round(top), height - 1)
    # at least one pixel: rounding must not leave a tiny image an empty box
    return (x0, y0, max(round(left + side), x0 + 1), max(round(top + side), y0 + 1)), fallback


class Cropper:
    """Runs the crop stage over many images with one background session and batched MTCNN."""

    def __init__(self, recipe: CropRecipe, store: ImageStore, remover=None, detector: FaceDetector | None = None):
        config = recipe.config
        if config.remove_background and remover is None:
            raise ValueError("remove_background is on but no background remover was given")
        if config.crop_face and detector is None:
            raise ValueError("crop_face is on but no face detector was given")
        self.recipe, self.config, self.store, self.remover, self.detector = recipe, config, store, remover, detector
        self.batch_size = config.batch_size
        self._key_params, self._recipe_json = recipe.key_params(), recipe.to_json()

    def key(self, content_hash: str) -> str:
        return derive_key(content_hash, "crop", self._key_params, CROP_CODE_VERSION)

    def run(
        self,
        images: pd.DataFrame,
        open_image: Callable[[str], Image.Image],
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[pd.DataFrame, CropStats]:
        """Crop every distinct content hash of `images` (columns content_hash, path); returns one record per hash.
        `progress(done, total)` is called about every tenth of the new images."""
        unique = images.drop_duplicates("content_hash")
        stats = CropStats(images=len(unique))
        keys = {h: self.key(h) for h in unique["content_hash"]}
        new = np.array([not self.store.has(keys[h]) for h in unique["content_hash"]], dtype=bool)  # (a list: columns when empty)
        todo = unique[new]
        stats.reused = len(unique) - len(todo)
        with ThreadPoolExecutor(max_workers=2) as io_pool:
            writes = []
            for batch in _batches(todo, self.batch_size):
                pictures = list(io_pool.map(open_image, batch["path"]))
                for content_hash, image, record in zip(batch["content_hash"], *self._process(pictures), strict=True):
                    key = keys[content_hash]
                    writes.append(io_pool.submit(self._save, key, image, record))
                before, stats.processed = stats.processed, stats.processed + len(batch)
                if progress and (stats.processed == len(todo) or before * 10 // len(todo) != stats.processed * 10 // len(todo)):
                    progress(stats.processed, len(todo))  # about every tenth of the work
            for w in writes:
                w.result()
        records = pd.DataFrame([self._record(h, keys[h]) for h in unique["content_hash"]], columns=list(RECORD_COLUMNS))
        stats.faces = int(records["face_found"].sum())
        stats.fallbacks = int(records["fallback"].sum())
        return records, stats

    def _process(self, pictures: list[Image.Image]) -> tuple[list[Image.Image], list[dict]]:
        return crop_batch(pictures, self.config, self.remover, self.detector)

    def _save(self, key: str, image: Image.Image, record: dict) -> None:
        self.store.put(key, encode_jpeg(image, self.config.jpeg_quality), record)

    def _record(self, content_hash: str, key: str) -> dict:
        r = self.store.record(key)
        box = r.get("box") or (math.nan,) * 4
        prob = r.get("face_prob")
        return {
            "content_hash": content_hash, "crop_key": key, "crop_path": self.store.uri(key), "crop_recipe": self._recipe_json,
            "face_found": bool(r["face_found"]),
            "face_prob": np.nan if prob is None else float(prob), "fallback": bool(r["fallback"]),
            "box_x0": box[0], "box_y0": box[1], "box_x1": box[2], "box_y1": box[3],
        }  # fmt: skip


def crop_batch(
    pictures: list[Image.Image], cfg: CropConfig, remover=None, detector: FaceDetector | None = None
) -> tuple[list[Image.Image], list[dict]]:
    """The crop stage on images in memory (what training saw is what serving does): returns crops and records."""
    if cfg.order == "background_first" and cfg.remove_background:
        pictures = remover.apply_all(pictures)
    faces = detector.detect(pictures) if cfg.crop_face else [None] * len(pictures)
    out, records = [], []
    for picture, face in zip(pictures, faces, strict=True):
        record = {"face_found": face is not None and face.prob >= cfg.min_face_prob, "face_prob": None if face is None else face.prob}
        if cfg.crop_face:
            box, fallback = crop_box(face, picture.width, picture.height, cfg)
            picture = picture.crop(box).resize((cfg.size, cfg.size), Image.BILINEAR)
            record |= {"fallback": fallback, "box": box}
        else:
            record |= {"fallback": False, "box": (0, 0, picture.width, picture.height)}
        out.append(picture)
        records.append(record)
    if cfg.order == "crop_first" and cfg.remove_background:
        out = remover.apply_all(out)
    return out, records


def photo_side(manifest: pd.DataFrame) -> int | None:
    """The longer side of the photos a model was trained on (the median over the readable rows of a manifest with
    width and height); None when the manifest does not say. The crop margin is in pixels, so a photo served at four
    times that size would be cropped four times tighter: `at_training_scale` brings it back."""
    if not {"width", "height"} <= set(manifest.columns):
        return None
    sides = manifest[["width", "height"]].max(axis=1).dropna()
    return int(sides.median()) if len(sides) else None


def at_training_scale(picture: Image.Image, side: int | None, slack: float = 1.25) -> Image.Image:
    """`picture` shrunk to longer side `side` when it is more than `slack` times larger (a phone's photo of a model
    trained on 512-pixel photos); never enlarged. None: as it is."""
    if not side or max(picture.size) <= side * slack:
        return picture
    scale = side / max(picture.size)
    return picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))), Image.Resampling.BILINEAR)


def crop_summary(manifest: pd.DataFrame, records: pd.DataFrame, attempted: int) -> tuple[pd.DataFrame, dict[str, float], pd.DataFrame]:
    """The manifest with its crop records, the detection and fallback rates, and a fixed sample of faces and fallbacks to look at."""
    out = manifest.merge(records, on="content_hash", how="left")
    out["face_found"] = out["face_found"].fillna(False).astype(bool)
    out["fallback"] = out["fallback"].fillna(False).astype(bool)
    found, fallback = out[out["face_found"]], out[out["fallback"]]
    rates = {"detection_rate": round(len(found) / max(attempted, 1), 4), "fallback_rate": round(len(fallback) / max(attempted, 1), 4)}
    sample = pd.concat([found.sample(n=min(12, len(found)), random_state=0), fallback.head(4)])
    return out, rates, sample


def _batches(frame: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(frame), size):
        yield frame.iloc[start : start + size]
