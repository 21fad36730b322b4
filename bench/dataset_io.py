"""Synthesis and layout-scan speed, and how often MTCNN finds the synthetic faces.

    .venv/bin/python bench/dataset_io.py [--profiles 143]

- synth_seconds: drawing ~1,000 images on all cores; baseline: JPEG-encoding and writing the
  same number of ready-made 384x512 images on all cores (the I/O floor); target: well under 60 s.
- scan_images_per_s: scan_competition (hash + full decode + checks); baseline: reading and
  hashing the same files only.
- mtcnn_detection_rate: share of images where MTCNN (default thresholds) finds a face; target >= 0.9.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit

from maskops.layout import scan_competition
from maskops.synth.people import SynthConfig, synthesize


def _write_jpeg(args: tuple[np.ndarray, str]) -> None:
    Image.fromarray(args[0]).save(args[1], quality=90)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", type=int, default=143)
    parser.add_argument("--detect", type=int, default=140, help="images to run MTCNN on")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "people"
        start = time.perf_counter()
        synthesize(root, SynthConfig(profiles=args.profiles, seed=7))
        synth_s = time.perf_counter() - start
        n = 7 * args.profiles

        frame = np.random.default_rng(0).integers(0, 255, (512, 384, 3), dtype=np.uint8)
        floor_dir = Path(tmp) / "floor"
        floor_dir.mkdir()
        start = time.perf_counter()
        with ProcessPoolExecutor() as pool:
            list(pool.map(_write_jpeg, [(frame, str(floor_dir / f"{i}.jpg")) for i in range(n)], chunksize=16))
        floor_s = time.perf_counter() - start
        emit("synth_seconds", synth_s, "s", baseline=floor_s, n=n, target="well under 60 s for ~1,000 images")

        paths = sorted((root / "train/images").rglob("*.jpg"))
        start = time.perf_counter()
        for p in paths:
            hashlib.sha256(p.read_bytes()).hexdigest()
        hash_s = time.perf_counter() - start
        start = time.perf_counter()
        layout = scan_competition(root)
        scan_s = time.perf_counter() - start
        emit("scan_images_per_s", len(layout.train) / scan_s, "images/s", baseline=len(paths) / hash_s, n=len(paths))

        import torch
        from facenet_pytorch import MTCNN

        torch.set_num_threads(2)
        detector = MTCNN(device="cpu")
        sample = layout.train.sample(n=min(args.detect, len(layout.train)), random_state=0)
        found = [detector.detect(Image.open(root / p).convert("RGB"))[0] is not None for p in sample["path"]]
        by_mask = sample.assign(found=found).groupby("mask")["found"].mean().round(3)
        emit("mtcnn_detection_rate", float(np.mean(found)), "share", n=len(found),
             by_mask={"wear": by_mask.get(0), "incorrect": by_mask.get(1), "none": by_mask.get(2)}, target=">= 0.9")  # fmt: skip


if __name__ == "__main__":
    main()
