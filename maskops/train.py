"""The training engine: one loop for every backbone, head and loss, resumable after a crash.

Seeded and deterministic on CPU; AMP on CUDA; channels-last on every device; cosine schedule with warmup;
early stopping on validation macro F1 computed over the whole validation set; a checkpoint
after every epoch, and `train_model` continues from it when called again with the same
settings and data.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from maskops.data import Augment, EpochSampler, class_counts, normalize
from maskops.files import write_atomic
from maskops.labels import MASK_ONLY
from maskops.losses import Criterion
from maskops.metrics import evaluate
from maskops.models import MaskNet, ProbabilityModel, freeze, total_parameters, trainable_parameters
from maskops.pretrained import PRETRAINED, provisioned_file
from maskops.settings import Settings
from maskops.train_config import PRESETS, TrainConfig, config_from

__all__ = ["CHECKPOINT", "PRESETS", "TrainConfig", "TrainResult", "config_from", "predict", "serving_model", "train_model"]

CHECKPOINT = "last.pt"
log = logging.getLogger(__name__)


def resolve_device(name: str, rank: int = 0) -> torch.device:
    """The device of `name`; in a data-parallel run on CUDA each process takes the GPU of its local rank."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None and torch.distributed.is_initialized():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    return device


def _amp_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed precision on CUDA: bf16 where the GPU has it (no loss scaling needed), else fp16 with a GradScaler."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def build_model(cfg: TrainConfig) -> tuple[MaskNet, int]:
    """The network of `cfg`; `pretrained` without a `pretrained_file` takes the weights `maskops fetch-models
    --backbone` provisioned in the models folder (maskops.pretrained) for backbones it knows, the hub for others."""
    pretrained_file = cfg.pretrained_file or None
    if cfg.pretrained and not pretrained_file and cfg.backbone in PRETRAINED:
        pretrained_file = provisioned_file(Settings.from_env().models, cfg.backbone)
    net = MaskNet(cfg.backbone, cfg.head, cfg.pretrained, pretrained_file, cfg.drop)
    trainable = freeze(net, cfg.freeze_spec) if cfg.freeze_spec.active else trainable_parameters(net)
    return net, trainable


@dataclass
class TrainResult:
    model: MaskNet
    history: list[dict[str, float]]
    best_epoch: int
    val_metrics: dict[str, float]
    val_probabilities: np.ndarray
    trainable_parameters: int
    total_parameters: int
    train_images_per_second: float
    resumed_from_epoch: int | None
    stopped_early: bool
    device: str
    timings: dict[str, float] = field(default_factory=dict)
    discarded_checkpoint: str | None = None  # where an unreadable checkpoint was moved aside, when one was


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _fingerprint(images: torch.Tensor, labels: np.ndarray) -> str:
    """Of the labels and of every image (a strided sample of each one's bytes: a replaced photo changes nearly all of
    them; sampling only some images once let a checkpoint resume on photos it was not trained on)."""
    digest = hashlib.sha256()
    digest.update(np.asarray(labels, dtype=np.int64).tobytes())
    digest.update(str(tuple(images.shape)).encode())
    digest.update(np.ascontiguousarray(images.reshape(len(images), -1)[:, ::61].numpy()).tobytes())
    return digest.hexdigest()[:16]


def data_fingerprint(train_images: torch.Tensor, train_labels: np.ndarray, val_images: torch.Tensor, val_labels: np.ndarray) -> str:
    """What a checkpoint records of the data it was trained on; it resumes only on the same."""
    return _fingerprint(train_images, train_labels) + _fingerprint(val_images, val_labels)


def will_resume(checkpoint_dir: str | Path, cfg: TrainConfig, data: str) -> bool:
    """Whether train_model would resume from the checkpoint in `checkpoint_dir` (same settings, same `data`
    fingerprint); a caller that keeps bookkeeping beside the checkpoint (an MLflow run to resume into) asks first."""
    path = Path(checkpoint_dir) / CHECKPOINT
    state = _read_checkpoint(path) if path.exists() else None
    return state is not None and state["config"] == asdict(cfg) and state["data"] == data


def _resumable(model, optimizer, scheduler, sampler_rng: torch.Generator, augment_rng: torch.Generator) -> dict:
    """Everything a checkpoint restores besides the run's bookkeeping: weights, optimizer, schedule and every random state."""
    return {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "sampler_rng": sampler_rng.get_state(), "augment_rng": augment_rng.get_state(), "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state(), "python_rng": random.getstate(),
    }  # fmt: skip


class CheckpointWriter:
    """Writes checkpoints to `path` on a thread of its own, one at a time, so that training goes on while the last
    epoch's is saved (~0.1 s for the demo's 52 MB, every epoch). What `save` is given is copied first: its tensors
    are the live weights and optimizer state. Leaving the `with` waits for the last write and raises its error."""

    def __init__(self, path: Path) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.path, self.pending = path, None
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="checkpoint")

    def save(self, state: dict) -> None:
        self.wait()
        snapshot = copy.deepcopy(state)
        self.pending = self.pool.submit(write_atomic, self.path, lambda f: torch.save(snapshot, f))

    def wait(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> CheckpointWriter:
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.wait()
        finally:
            self.pool.shutdown()


def _restore(state: dict, model, optimizer, scheduler, sampler_rng: torch.Generator, augment_rng: torch.Generator) -> None:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    sampler_rng.set_state(state["sampler_rng"])
    augment_rng.set_state(state["augment_rng"])
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])
    random.setstate(state["python_rng"])


def _read_checkpoint(path: Path) -> dict | None:
    """The state saved in `path`, or None (with a warning) when the file cannot be read: truncated, garbage, not a checkpoint."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)  # generator states must stay on the host
        if not isinstance(state, dict) or not {"config", "data", "epoch"} <= state.keys():
            raise ValueError(f"not a maskops checkpoint (a {type(state).__name__})")
        return state
    except Exception as error:  # torch.load raises anything from EOFError to UnpicklingError on a damaged file
        log.warning("checkpoint %s cannot be read (%s: %s)", path, type(error).__name__, error)
        return None


def set_aside(path: Path, rank: int = 0) -> str:
    """Move a checkpoint that cannot be resumed to last.pt.corrupt-<timestamp> (never deleted), so training starts afresh."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for n in range(2, 1000):
        if not target.exists():
            break
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    if rank == 0:  # in a data-parallel run every process reads the file; one moves it
        with contextlib.suppress(FileNotFoundError):
            path.replace(target)
            log.warning("moved the checkpoint %s aside to %s; training starts from the first epoch", path, target.name)
    return str(target)


@torch.no_grad()
def predict(
    model: torch.nn.Module, images: torch.Tensor, batch_size: int = 64, device: torch.device | None = None, features: bool = False
) -> np.ndarray:
    """(N, 18) class probabilities of uint8 images, in order, no augmentation; with `features`, the backbones'
    pooled features (N, width) instead (maskops.models.pooled_features)."""
    from maskops.models import class_probabilities, pooled_features

    device = device or next(model.parameters()).device
    with contextlib.suppress(NotImplementedError):  # exported (pt2) programs are already in eval mode
        model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        # channels-last on every device: oneDNN's CPU convolutions (depthwise ones most) run 1.4-1.7x faster in it too
        x = normalize(images[start : start + batch_size].to(device)).contiguous(memory_format=torch.channels_last)
        amp = _amp_dtype(device)
        with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            result = pooled_features(model, x) if features else model(x)
        probs = result if isinstance(result, torch.Tensor) else class_probabilities(result)
        out.append(probs.float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0 if features else 18), dtype=np.float32)


def train_model(
    train_images: torch.Tensor,
    train_labels: np.ndarray,
    val_images: torch.Tensor,
    val_labels: np.ndarray,
    cfg: TrainConfig,
    checkpoint_dir: str | Path | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train on cached uint8 crops; validate on the whole validation set after every epoch.

    With `cfg.processes` > 1 the same loop runs data-parallel under torchrun (maskops.distributed): every process
    draws the same global batch and trains on its share, DistributedDataParallel averages the gradients."""
    if len(train_images) == 0 or len(val_images) == 0:
        raise ValueError(f"need training and validation images, got {len(train_images)} and {len(val_images)}")
    rank, world = _rank_and_world()
    if cfg.processes > 1 and world == 1:
        from maskops.distributed import train_data_parallel

        return train_data_parallel((train_images, train_labels), (val_images, val_labels), cfg, checkpoint_dir, on_epoch)
    device = resolve_device(cfg.device, rank)
    _seed_everything(cfg.seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    model, trainable = build_model(cfg)
    # channels-last on every device (CUDA's tensor cores; on CPU oneDNN: an EfficientNet-Lite0 epoch 1.4x faster);
    # the model goes back to the default layout when training ends, so what is saved or exported is as usual
    model = model.to(device, memory_format=torch.channels_last)
    engine = model
    if world > 1:
        if device.type == "cuda":  # batch statistics over every process's share (SyncBatchNorm is GPU-only)
            from timm.layers import convert_sync_batchnorm  # torch's own drops the activation of timm's BatchNormAct2d

            model = convert_sync_batchnorm(model)
        engine = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type == "cuda")
    else:
        optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    steps = math.ceil(len(train_labels) / cfg.batch_size)
    total, warmup = cfg.epochs * steps, int(cfg.warmup_epochs * steps)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    # the whole training set lives on the training device (uint8: 18,900 photos at 224 px are 2.8 GB); batches are
    # gathered, sampled and augmented there, with no per-step host round trip
    fingerprint = data_fingerprint(train_images, train_labels, val_images, val_labels)
    images_on_device = train_images.to(device)
    labels_on_device = torch.as_tensor(np.asarray(train_labels, dtype=np.int64), device=device)
    val_images = val_images.to(device)
    augment = (
        Augment(cfg.augment_flip, cfg.augment_scale, cfg.augment_jitter, cfg.augment_grey, cfg.augment_blur, cfg.augment_lowres)
        if cfg.augment
        else None
    )
    augment_rng = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    sampler = EpochSampler(labels_on_device, cfg.sampler, cfg.seed + 2)
    alpha = None if cfg.focal_alpha == "none" else cfg.focal_alpha if cfg.focal_alpha == "inverse_frequency" else float(cfg.focal_alpha)
    criterion = Criterion(
        cfg.head, class_counts(train_labels), dict(zip(("mask", "gender", "age"), cfg.task_weights, strict=True)),
        mask_only=bool((np.asarray(train_labels) >= MASK_ONLY).any()), name=cfg.loss, gamma=cfg.focal_gamma, alpha=alpha, smoothing=cfg.label_smoothing, class_weights=cfg.class_weights,
    ).to(device)  # fmt: skip
    amp = _amp_dtype(device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    step_engine = torch.compile(engine) if cfg.compile else engine

    history: list[dict[str, float]] = []
    best_f1, best_state, best_epoch, bad_epochs, start_epoch, resumed = -1.0, None, -1, 0, 0, None
    checkpoint = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir else None
    discarded = None
    if checkpoint is not None and checkpoint.exists():
        state = _read_checkpoint(checkpoint)
        if state is None:
            discarded = set_aside(checkpoint, rank)
        elif state["config"] == asdict(cfg) and state["data"] == fingerprint:
            objects = (model, optimizer, scheduler, sampler.generator, augment_rng)
            fresh = copy.deepcopy(_resumable(*objects))
            try:
                _restore(state, *objects)
                history, best_f1, best_state, best_epoch, bad_epochs = (
                    state["history"], state["best_f1"], state["best_state"], state["best_epoch"], state["bad_epochs"],
                )  # fmt: skip
                start_epoch = resumed = state["epoch"] + 1
            except (KeyError, TypeError, ValueError, RuntimeError) as error:  # saved by another model under the same settings
                log.warning("checkpoint %s does not fit this model (%s)", checkpoint, error)
                _restore(fresh, *objects)
                discarded = set_aside(checkpoint, rank)

    seen, train_seconds, stopped_early = 0, 0.0, False
    # the next epoch trains while the last one's checkpoint is written; an error or a crash waits for that write
    with CheckpointWriter(checkpoint) if checkpoint is not None and rank == 0 else contextlib.nullcontext() as writer:
        for epoch in range(start_epoch, cfg.epochs):
            if bad_epochs >= cfg.patience:
                stopped_early = True
                break
            model.train()
            started = time.perf_counter()
            running = torch.zeros((), dtype=torch.float64, device=device)
            order = sampler.epoch()
            # data-parallel: a last batch too small to give every process an image is dropped
            usable = len(order) - (len(order) % cfg.batch_size if world > 1 and 0 < len(order) % cfg.batch_size < world else 0)
            for start in range(0, usable, cfg.batch_size):
                index = order[start : start + cfg.batch_size]
                batch, y = images_on_device[index], labels_on_device[index]
                x = normalize(augment(batch, augment_rng) if augment is not None else batch)
                if world > 1:  # every process drew the same global batch (same seeds): each trains on its share
                    x, y = x[rank::world], y[rank::world]
                x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
                    loss = criterion(step_engine(x), y)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                running += loss.detach() * len(y)
                seen += len(y) * world
            if world > 1:  # the epoch's loss over every process's share
                torch.distributed.all_reduce(running)
            running = float(running.item())  # one host sync per epoch
            epoch_seconds = time.perf_counter() - started
            train_seconds += epoch_seconds
            probs = predict(model, val_images, device=device)
            metrics = {
                "epoch": epoch,
                "train_loss": running / max(usable, 1),
                "lr": scheduler.get_last_lr()[0],
                "epoch_images_per_second": usable / epoch_seconds if epoch_seconds else 0.0,
                **{f"val_{k}": v for k, v in evaluate(val_labels, probs).items()},
            }
            history.append(metrics)
            if metrics["val_macro_f1"] > best_f1:
                best_f1, best_epoch, bad_epochs = metrics["val_macro_f1"], epoch, 0
                best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            else:
                bad_epochs += 1
            if on_epoch is not None:  # before the checkpoint: an epoch a resumed run skips has had its metrics reported
                on_epoch(epoch, metrics)
            if writer is not None:
                state = {
                    "config": asdict(cfg), "data": fingerprint, "epoch": epoch, **_resumable(model, optimizer, scheduler, sampler.generator, augment_rng),
                    "history": history, "best_f1": best_f1, "best_state": best_state, "best_epoch": best_epoch, "bad_epochs": bad_epochs,
                }  # fmt: skip
                writer.save(state)
    if best_state is not None:
        model.load_state_dict(best_state)
    probs = predict(model, val_images, device=device)
    model = model.to(memory_format=torch.contiguous_format)
    return TrainResult(
        model=model, history=history, best_epoch=best_epoch, val_metrics=evaluate(val_labels, probs), val_probabilities=probs,
        trainable_parameters=trainable, total_parameters=total_parameters(model),
        train_images_per_second=seen / train_seconds if train_seconds else 0.0, resumed_from_epoch=resumed,
        stopped_early=stopped_early, device=str(device), timings={"train_seconds": train_seconds}, discarded_checkpoint=discarded,
    )  # fmt: skip


def serving_model(net: MaskNet) -> ProbabilityModel:
    """The module that is logged and served: normalised float images in, 18 probabilities out."""
    return ProbabilityModel(copy.deepcopy(net).cpu().eval())
