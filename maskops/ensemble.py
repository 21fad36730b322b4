"""Soft voting: the ensemble averages the members' class probabilities (never raw logits),
each member having seen the image through its own preprocessing."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch

from maskops.metrics import evaluate


def soft_vote(probabilities: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted mean of (N, 18) probability arrays; equal weights by default. Rows sum to 1."""
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in probabilities])
    if stack.ndim != 3 or stack.shape[2] != 18:
        raise ValueError(f"expected members' (N, 18) probabilities, got shape {stack.shape}")
    w = np.ones(len(stack)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(w) != len(stack) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"need one non-negative weight per member ({len(stack)}), not all zero; got {list(w)}")
    mixed = np.tensordot(w / w.sum(), stack, axes=1)
    return mixed / mixed.sum(axis=1, keepdims=True)


def fit_weights(probabilities: Sequence[np.ndarray], y_true: np.ndarray, step: float = 0.1) -> tuple[list[float], float]:
    """Weights on a simplex grid that maximise validation macro F1 (ties: the most even weights)."""
    members = len(probabilities)
    ticks = round(1 / step)
    best, best_score = [1 / members] * members, evaluate(y_true, soft_vote(probabilities))["macro_f1"]
    for combo in itertools.product(range(ticks + 1), repeat=members - 1):
        rest = ticks - sum(combo)
        if rest < 0:
            continue
        w = [c / ticks for c in (*combo, rest)]
        score = evaluate(y_true, soft_vote(probabilities, w))["macro_f1"]
        if score > best_score + 1e-12:
            best, best_score = w, score
    return best, best_score


@torch.no_grad()
def member_probabilities(model, images: torch.Tensor, tta: bool = False, batch_size: int = 64) -> np.ndarray:
    """(N, 18) probabilities of one member on uint8 crops already at its input size; `tta` averages
    the horizontally flipped image in."""
    from maskops.train import predict

    probs = predict(model, images, batch_size)
    if tta:
        probs = (probs + predict(model, images.flip(-1), batch_size)) / 2
    return probs
