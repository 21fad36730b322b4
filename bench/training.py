"""Training throughput: the real loop (sampler, augmentation, loader) vs compute alone.

    .venv/bin/python bench/training.py [--images 512] [--size 96] [--backbone resnet10t]

train_loop_vs_compute: images/s of maskops.train.train_model's epochs (data loading included,
validation excluded) / images/s of forward+backward+step of the same model, batch and
resolution on random tensors already in memory. Target >= 0.9.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit

from maskops.losses import Criterion
from maskops.train import PRESETS, build_model, train_model


def compute_only(cfg, images: int, counts: list[int]) -> float:
    torch.manual_seed(0)
    model, _ = build_model(cfg)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    criterion = Criterion(
        cfg.head, counts, dict(zip(("mask", "gender", "age"), cfg.task_weights, strict=True)), name=cfg.loss, gamma=cfg.focal_gamma
    )
    batches = [(torch.randn(cfg.batch_size, 3, cfg.image_size, cfg.image_size), torch.randint(0, 18, (cfg.batch_size,))) for _ in range(4)]
    steps = images // cfg.batch_size
    x, y = batches[0]
    criterion(model(x), y).backward()  # warm up
    start = time.perf_counter()
    for i in range(steps):
        x, y = batches[i % len(batches)]
        loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * cfg.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, default=PRESETS["demo"].image_size)
    parser.add_argument("--backbone", default=PRESETS["demo"].backbone)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    cfg = replace(PRESETS["demo"], backbone=args.backbone, image_size=args.size, epochs=args.epochs, device="cpu")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 18, args.images)
    images = torch.from_numpy(rng.integers(0, 255, (args.images, 3, args.size, args.size), dtype=np.uint8))
    result = train_model(images, labels, images[:64], labels[:64], cfg)
    baseline = compute_only(cfg, args.images, np.bincount(labels, minlength=18).tolist())
    emit("train_loop_vs_compute", result.train_images_per_second, "images/s", baseline=baseline, n=args.images * args.epochs,
         backbone=args.backbone, image_size=args.size, batch_size=cfg.batch_size, target=">= 0.9")  # fmt: skip


if __name__ == "__main__":
    main()
