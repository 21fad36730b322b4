"""Losses: cross entropy, label smoothing, focal (per sample, per-class alpha) and an F1 surrogate.

Focal loss is computed per sample — alpha[y] * (1 - p_y)^gamma * -log p_y — and then averaged;
the original applied the focal factor to the batch-mean cross entropy, which is only a rescaling.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from maskops.labels import MASK_ONLY
from maskops.models import TASKS

LOSSES = ("ce", "label_smoothing", "focal", "f1")


class FocalLoss(nn.Module):
    def __init__(self, gamma: float = 2.0, alpha: torch.Tensor | None = None):
        super().__init__()
        self.gamma = gamma
        self.register_buffer("alpha", alpha if alpha is not None else torch.empty(0))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
        loss = -((1 - log_p.exp()) ** self.gamma) * log_p
        if self.alpha.numel():
            loss = loss * self.alpha[target]
        return loss.mean()


class SoftF1Loss(nn.Module):
    """1 - macro F1 computed from soft (probability) counts: differentiable, batch-level."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = logits.softmax(dim=1)
        y = F.one_hot(target, logits.shape[1]).to(p.dtype)
        tp = (p * y).sum(0)
        fp = (p * (1 - y)).sum(0)
        fn = ((1 - p) * y).sum(0)
        f1 = 2 * tp / (2 * tp + fp + fn + 1e-8)
        present = y.sum(0) > 0
        return 1 - f1[present].mean()


def inverse_frequency(counts: Sequence[int]) -> torch.Tensor:
    """Weights 1/count, normalised to mean 1 over the classes present."""
    c = torch.tensor(list(counts), dtype=torch.float32)
    w = torch.where(c > 0, 1.0 / c.clamp(min=1), torch.zeros_like(c))
    return w * (w > 0).sum() / w.sum().clamp(min=1e-8)


def build_loss(name: str, classes: int, counts: Sequence[int] | None = None, gamma: float = 2.0, alpha: str | float | Sequence[float] | None = None,
               smoothing: float = 0.1, class_weights: bool = False) -> nn.Module:  # fmt: skip
    """One loss by name. alpha: None, a number (same for all), 'inverse_frequency' or one value per class."""
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {name!r}")
    weights = inverse_frequency(counts) if class_weights and counts is not None else None
    if name == "ce":
        return nn.CrossEntropyLoss(weight=weights)
    if name == "label_smoothing":
        return nn.CrossEntropyLoss(weight=weights, label_smoothing=smoothing)
    if name == "f1":
        return SoftF1Loss()
    if alpha is None:
        alpha_t = weights
    elif alpha == "inverse_frequency":
        if counts is None:
            raise ValueError("alpha='inverse_frequency' needs class counts")
        alpha_t = inverse_frequency(counts)
    elif isinstance(alpha, int | float):
        alpha_t = torch.full((classes,), float(alpha))
    else:
        alpha_t = torch.tensor(list(alpha), dtype=torch.float32)
        if alpha_t.numel() != classes:
            raise ValueError(f"alpha needs one value per class ({classes}), got {alpha_t.numel()}")
    return FocalLoss(gamma, alpha_t)


class Criterion(nn.Module):
    """The training loss for a head mode: one loss on 18 classes, or a weighted sum over the three tasks.

    Targets are class ids (0-17), or mask-only labels (maskops.labels.MASK_ONLY + mask: gender and age unknown). A
    mask-only photo trains the mask task alone: with the three task heads, only the mask loss sees it; with one
    18-class head, the mask loss is taken on the marginal of the mask state (the log-sum-exp of the six classes of
    each mask state are its logits, whose softmax is the sum of those classes' probabilities). A batch's loss is the
    mean over its photos of both kinds. Only a criterion built with `mask_only=True` looks for such labels (picking
    them out of a batch costs a host sync a step); the others compute exactly the losses of fully labelled data."""

    def __init__(self, mode: str, class_counts: Sequence[int], task_weights: dict[str, float] | None = None, mask_only: bool = False,
                 **loss_kwargs):  # fmt: skip
        super().__init__()
        self.partial_labels = mask_only
        counts = torch.tensor(list(class_counts), dtype=torch.long)
        per_task = {
            "mask": counts.reshape(3, 6).sum(1), "gender": counts.reshape(3, 2, 3).sum((0, 2)), "age": counts.reshape(6, 3).sum(0),
        }  # fmt: skip
        if mode == "multiclass":
            self.losses = nn.ModuleDict({"class": build_loss(classes=18, counts=counts.tolist(), **loss_kwargs)})
            self.weights = {"class": 1.0}
            # mask-only photos: the same kind of loss on the three mask states' marginal
            alpha = loss_kwargs.get("alpha")
            if alpha is not None and not isinstance(alpha, str | int | float):  # one per class: each mask state's mean
                alpha = torch.as_tensor(list(alpha), dtype=torch.float32).reshape(3, 6).mean(1).tolist()
            self.mask_only = build_loss(classes=3, counts=per_task["mask"].tolist(), **{**loss_kwargs, "alpha": alpha})
        else:
            self.losses = nn.ModuleDict({t: build_loss(classes=n, counts=per_task[t].tolist(), **loss_kwargs) for t, n in TASKS.items()})
            self.weights = task_weights or {"mask": 1 / 3, "gender": 1 / 3, "age": 1 / 3}
            self.mask_only = None

    def forward(self, outputs: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        if not self.partial_labels:
            return self._full(outputs, target)
        partial = target >= MASK_ONLY
        full = ~partial
        n, n_partial = len(target), int(partial.sum())
        n_full = n - n_partial
        if "mask" in outputs:  # the mask head sees every photo; gender and age only the fully labelled ones
            mask = torch.where(partial, target - MASK_ONLY, target // 6)
            loss = self.weights["mask"] * self.losses["mask"](outputs["mask"], mask) * n
            for task, y in (("gender", (target[full] // 3) % 2), ("age", target[full] % 3)):
                if n_full:
                    loss = loss + n_full * self.weights[task] * self.losses[task](outputs[task][full], y)
                else:  # a batch of mask-only photos still touches every head: data-parallel training reduces the
                    loss = loss + 0.0 * outputs[task].sum()  # gradients of all parameters on every process, or hangs
            return loss / n
        loss = outputs["class"].new_zeros((), dtype=torch.float32)
        if n_partial:
            marginal = outputs["class"][partial].float().reshape(-1, 3, 6).logsumexp(dim=2)
            loss = loss + self.mask_only(marginal, target[partial] - MASK_ONLY) * n_partial
        if n_full:
            loss = loss + self._full({k: v[full] for k, v in outputs.items()}, target[full]) * n_full
        return loss / n

    def _full(self, outputs: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        if "class" in outputs:
            return self.losses["class"](outputs["class"], target)
        targets = {"mask": target // 6, "gender": (target // 3) % 2, "age": target % 3}
        return sum(self.weights[t] * self.losses[t](outputs[t], targets[t]) for t in TASKS)
