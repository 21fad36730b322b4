"""Training throughput: the real loop (sampler, augmentation, batches gathered on the device) vs compute alone.

    .venv/bin/python bench/training.py [--images 512] [--size 96] [--backbone resnet10t] [--batch 32] [--device cpu]

train_loop_vs_compute: images/s of maskops.train.train_model's epochs (validation excluded; the first epoch is left
out when there are several, as warm-up) / images/s of forward+backward+step of the same model, batch, resolution,
precision and memory format on random tensors already on the device, run between the loop's epochs (paired). Target >= 0.9 (CPU and GPU). bench/gpu_check.py
runs the GPU configurations through `loop_vs_compute`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import emit

from maskops.losses import Criterion
from maskops.train import PRESETS, _amp_dtype, build_model, resolve_device, train_model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class ComputeOnly:
    """The training step alone, set up as train_model sets it up on cfg.device: `rate(images)` is its images/s."""

    def __init__(self, cfg, counts: list[int]):
        self.device = device = resolve_device(cfg.device)
        if device.type == "cpu":  # as train_model runs on the CPU
            torch.use_deterministic_algorithms(True, warn_only=True)
        torch.manual_seed(0)
        model, _ = build_model(cfg)
        model = model.to(device, memory_format=torch.channels_last).train()  # as train_model: channels-last everywhere
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type == "cuda")
        self.criterion = Criterion(
            cfg.head, counts, dict(zip(("mask", "gender", "age"), cfg.task_weights, strict=True)), name=cfg.loss, gamma=cfg.focal_gamma
        ).to(device)
        self.model = torch.compile(model) if cfg.compile else model
        self.amp, self.batch = _amp_dtype(device), cfg.batch_size
        self.batches = [(torch.randn(cfg.batch_size, 3, cfg.image_size, cfg.image_size, device=device).contiguous(memory_format=torch.channels_last),
                         torch.randint(0, 18, (cfg.batch_size,), device=device)) for _ in range(4)]  # fmt: skip
        for i in range(3):  # warm up (and compile)
            self.step(*self.batches[i % len(self.batches)])
        _sync(device)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.autocast(self.device.type, dtype=self.amp or torch.bfloat16, enabled=self.amp is not None):
            loss = self.criterion(self.model(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def rate(self, images: int) -> float:
        steps = max(images // self.batch, 1)
        start = time.perf_counter()
        for i in range(steps):
            self.step(*self.batches[i % len(self.batches)])
        _sync(self.device)
        return steps * self.batch / (time.perf_counter() - start)


def loop_vs_compute(cfg, images: int, epochs: int) -> dict:
    """The loop's and the compute-only images/s for `cfg` on `images` random uint8 images (cfg.device), paired: after
    every epoch of the loop, an epoch's worth of compute-only steps, so a machine whose speed drifts (shared cores,
    boost clocks) biases neither side. Figures: medians over the epochs after the first (warm-up)."""
    cfg = replace(cfg, epochs=epochs, patience=epochs + 1)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 18, images)
    data = torch.from_numpy(rng.integers(0, 255, (images, 3, cfg.image_size, cfg.image_size), dtype=np.uint8))
    compute = ComputeOnly(cfg, np.bincount(labels, minlength=18).tolist())
    pairs: list[tuple[float, float]] = []
    result = train_model(data, labels, data[:64], labels[:64], cfg,
                         on_epoch=lambda epoch, m: pairs.append((m["epoch_images_per_second"], compute.rate(images))))  # fmt: skip
    kept = pairs[1:] or pairs
    return {"loop": statistics.median(p[0] for p in kept), "compute": statistics.median(p[1] for p in kept),
            "ratio": round(statistics.median(p[0] / p[1] for p in kept), 3), "pairs": [[round(a, 1), round(b, 1)] for a, b in pairs],
            "backbone": cfg.backbone, "image_size": cfg.image_size, "batch_size": cfg.batch_size, "device": result.device,
            "precision": str(_amp_dtype(resolve_device(cfg.device)) or torch.float32).replace("torch.", ""), "compile": cfg.compile}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, default=PRESETS["scratch"].image_size)
    parser.add_argument("--backbone", default=PRESETS["scratch"].backbone)
    parser.add_argument("--batch", type=int, default=PRESETS["scratch"].batch_size)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    cfg = replace(PRESETS["scratch"], backbone=args.backbone, image_size=args.size, batch_size=args.batch, device=args.device)
    figures = loop_vs_compute(cfg, args.images, args.epochs)
    emit("train_loop_vs_compute", figures.pop("loop"), "images/s", baseline=figures.pop("compute"), n=args.images * args.epochs,
         target=">= 0.9", paired_ratio=figures.pop("ratio"), **figures)  # fmt: skip


if __name__ == "__main__":
    main()
