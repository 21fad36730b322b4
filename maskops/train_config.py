"""A training run's settings, as data: one dataclass with its help texts and the presets (no torch here,
so the pipeline's code location loads without it)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

from maskops.options import option


@dataclass(frozen=True)
class TrainConfig:
    backbone: str = option("resnet10t", "Any timm model name.")
    pretrained: bool = option(False, "Start from pretrained weights (from pretrained_file, or the hub when online).")
    pretrained_file: str = option("", "Local .pth/.safetensors weights for the backbone.")
    image_size: int = option(96, "Input side in pixels.")
    epochs: int = option(6, "Most epochs to train.")
    batch_size: int = option(32, "Images per step.")
    lr: float = option(3e-3, "Peak learning rate.")
    weight_decay: float = option(0.05, "Weight decay.")
    optimizer: str = option("adamw", "adamw or sgd (Nesterov momentum 0.9).")
    warmup_epochs: float = option(1.0, "Linear warmup before the cosine schedule, in epochs.")
    loss: str = option("focal", "ce, label_smoothing, focal or f1.")
    focal_gamma: float = option(2.0, "Focal loss gamma.")
    focal_alpha: str = option("none", "Focal loss alpha: none, inverse_frequency or a number.")
    label_smoothing: float = option(0.1, "Smoothing of the label_smoothing loss.")
    class_weights: bool = option(False, "Weight the loss by inverse class frequency.")
    head: str = option("hard", "multiclass, hard (one backbone, three heads) or soft (cross-stitch).")
    task_weights: tuple[float, float, float] = option(
        (1 / 3, 1 / 3, 1 / 3), "Mask, gender, age loss weights (the original: 0.05, 0.05, 0.9)."
    )
    freeze_stem: bool = option(False, "Freeze the stem (patch embedding).")
    freeze_stages: int = option(0, "Freeze stages 0..n-1 (the original's best: stem + 2).")
    freeze_patterns: tuple[str, ...] = option((), "Regexes of parameter names to freeze.")
    sampler: str = option("weighted", "weighted (1 / class frequency) or shuffle.")
    augment: bool = option(True, "Augment training batches.")
    augment_flip: bool = option(True, "Random horizontal flips.")
    augment_scale: float = option(0.1, "Random zoom-in up to this fraction, with a shift.")
    augment_jitter: float = option(0.2, "Brightness and contrast jitter.")
    augment_grey: float = option(0.0, "Share of training images turned greyscale (real photos may be grey; the synthetic ones never are).")
    augment_blur: float = option(0.0, "Share of training images blurred (a box blur about a 40th of the side: enlarged or soft photos).")
    augment_lowres: float = option(
        0.0, "Share of training images shrunk to a quarter of their side and enlarged back (small faces, low-resolution cameras)."
    )
    drop: float = option(0.0, "Dropout before the heads.")
    seed: int = option(0, "Seed of weights, sampling and augmentation.")
    patience: int = option(7, "Early stopping: epochs without a better validation macro F1.")
    device: str = option("auto", "auto (CUDA when present), cpu or cuda:N.")
    compile: bool = option(False, "torch.compile the training step (worth it on GPUs for long runs).")
    processes: int = option(1, "Data-parallel processes (torchrun: gloo on CPU, NCCL with one GPU each); the batch is split between them.")

    def __post_init__(self) -> None:
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.sampler not in ("weighted", "shuffle"):
            raise ValueError(f"sampler must be 'weighted' or 'shuffle', got {self.sampler!r}")
        if self.processes < 1 or self.batch_size < self.processes:
            raise ValueError(f"processes must be >= 1 and at most batch_size, got {self.processes} for batch_size {self.batch_size}")
        if self.epochs < 1 or self.batch_size < 1 or self.image_size < 16:
            raise ValueError(f"epochs, batch_size must be >= 1 and image_size >= 16: {self.epochs}, {self.batch_size}, {self.image_size}")
        if self.class_weights and (self.loss == "f1" or (self.loss == "focal" and self.focal_alpha != "none")):
            reason = "it weights no class" if self.loss == "f1" else f"focal_alpha {self.focal_alpha!r} weights the classes itself"
            raise ValueError(f"class_weights has no effect with loss {self.loss!r} ({reason}): turn one of them off")
        if self.patience < 1:  # 0 stopped before the first epoch: an untrained model, logged and maybe registered
            raise ValueError(f"patience must be >= 1 (epochs without a better validation macro F1), got {self.patience}")

    @property
    def freeze_spec(self):
        """What partial fine-tuning freezes (a maskops.models.FreezeSpec)."""
        from maskops.models import FreezeSpec

        return FreezeSpec(self.freeze_stem, self.freeze_stages, tuple(self.freeze_patterns))

    def as_params(self) -> dict[str, str]:
        return {k: json.dumps(v) if isinstance(v, list | tuple) else str(v) for k, v in asdict(self).items()}


DEMO_SIZE = 112  # 0.66 vs 0.60 evaluation macro F1 of the champion at 96 px, 3 seeds (README, bench/study.py)
PRESETS: dict[str, TrainConfig] = {
    # random init, no pretrained weights to provision: a small CNN on 96 px crops (the tests; what the demo was before)
    "scratch": TrainConfig(),
    # the CPU demo (and the model assets' default): ImageNet-pretrained EfficientNet-Lite0, stem + 2 stages frozen,
    # sized to fit the demo's minutes (weights: `maskops fetch-models`, which `maskops demo` runs; maskops.pretrained)
    "demo": TrainConfig(backbone="efficientnet_lite0", pretrained=True, image_size=DEMO_SIZE, epochs=6, lr=1e-3, freeze_stem=True,
                        freeze_stages=2),
    # ImageNet-pretrained EfficientNet-Lite0 fine-tuned on the CPU: stem + 2 stages frozen, 128 px
    # (weights from `maskops fetch-models --backbone efficientnet_lite0`, found by name; maskops.pretrained)
    "lite0": TrainConfig(backbone="efficientnet_lite0", pretrained=True, image_size=128, epochs=6, lr=1e-3, freeze_stem=True,
                         freeze_stages=2),
    # the same family on a GPU: EfficientNet-Lite2 at 224 px, bigger batches, longer
    "gpu-lite2": TrainConfig(backbone="efficientnet_lite2", pretrained=True, image_size=224, epochs=20, batch_size=128, lr=1e-3,
                             freeze_stem=True, freeze_stages=2, patience=5),
    # the original's best single model (pretrained weights via pretrained_file or the hub)
    "seed-best": TrainConfig(
        backbone="tiny_vit_21m_224", pretrained=True, image_size=224, epochs=30, batch_size=32, lr=5e-4, weight_decay=0.05,
        loss="focal", focal_gamma=3.0, focal_alpha="0.25", head="multiclass", freeze_stem=True, freeze_stages=2, patience=7,
    ),
}  # fmt: skip


def config_from(preset: str, **overrides) -> TrainConfig:
    """A preset with some fields overridden (None means: keep the preset's value)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    changes = {k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items() if v is not None}
    return replace(PRESETS[preset], **changes)
