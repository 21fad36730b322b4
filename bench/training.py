"""Training throughput: the real loop (sampler, augmentation, batches gathered on the device) vs compute alone.

    .venv/bin/python bench/training.py [--images 512] [--size 96] [--backbone resnet10t] [--batch 32] [--device cpu]

train_loop_vs_compute: images/s of maskops.train.train_model's epochs (validation excluded; the first epoch is left
out when there are several, as warm-up) / images/s of forward+backward+step of the same model, batch, resolution,
precision and memory format on random tensors already on the device. Target >= 0.9 (CPU and GPU). bench/gpu_check.py
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


def compute_only(cfg, images: int, counts: list[int]) -> float:
    """Images/s of the training step alone, set up as train_model sets it up on cfg.device."""
    device = resolve_device(cfg.device)
    torch.manual_seed(0)
    model, _ = build_model(cfg)
    model.to(device).train()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type == "cuda")
    criterion = Criterion(
        cfg.head, counts, dict(zip(("mask", "gender", "age"), cfg.task_weights, strict=True)), name=cfg.loss, gamma=cfg.focal_gamma
    ).to(device)
    step_model = torch.compile(model) if cfg.compile else model
    amp = _amp_dtype(device)
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    batches = [(torch.randn(cfg.batch_size, 3, cfg.image_size, cfg.image_size, device=device).contiguous(memory_format=fmt),
                torch.randint(0, 18, (cfg.batch_size,), device=device)) for _ in range(4)]  # fmt: skip

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            loss = criterion(step_model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for i in range(3):  # warm up (and compile)
        step(*batches[i % len(batches)])
    _sync(device)
    steps = max(images // cfg.batch_size, 1)
    start = time.perf_counter()
    for i in range(steps):
        step(*batches[i % len(batches)])
    _sync(device)
    return steps * cfg.batch_size / (time.perf_counter() - start)


def loop_vs_compute(cfg, images: int, epochs: int) -> dict:
    """The loop's and the compute-only images/s for `cfg` on `images` random uint8 images (cfg.device)."""
    cfg = replace(cfg, epochs=epochs, patience=epochs + 1)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 18, images)
    data = torch.from_numpy(rng.integers(0, 255, (images, 3, cfg.image_size, cfg.image_size), dtype=np.uint8))
    result = train_model(data, labels, data[:64], labels[:64], cfg)
    rates = [h["epoch_images_per_second"] for h in result.history]
    loop = statistics.median(rates[1:]) if len(rates) > 1 else rates[0]
    compute = compute_only(cfg, images, np.bincount(labels, minlength=18).tolist())
    return {"loop": loop, "compute": compute, "ratio": round(loop / compute, 3), "epochs_images_per_second": [round(r, 1) for r in rates],
            "backbone": cfg.backbone, "image_size": cfg.image_size, "batch_size": cfg.batch_size, "device": result.device,
            "precision": str(_amp_dtype(resolve_device(cfg.device)) or torch.float32).replace("torch.", ""), "compile": cfg.compile}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, default=PRESETS["demo"].image_size)
    parser.add_argument("--backbone", default=PRESETS["demo"].backbone)
    parser.add_argument("--batch", type=int, default=PRESETS["demo"].batch_size)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    cfg = replace(PRESETS["demo"], backbone=args.backbone, image_size=args.size, batch_size=args.batch, device=args.device)
    figures = loop_vs_compute(cfg, args.images, args.epochs)
    emit("train_loop_vs_compute", figures.pop("loop"), "images/s", baseline=figures.pop("compute"), n=args.images * args.epochs,
         target=">= 0.9", **{k: v for k, v in figures.items() if k != "ratio"})  # fmt: skip


if __name__ == "__main__":
    main()
