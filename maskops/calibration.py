"""How far a model's probabilities can be taken at their word, and temperature scaling to make them so.

A member trained with focal loss and label smoothing on few people is rarely calibrated: its top
probability says 0.4 where it is right 70% of the time, or the reverse. Soft voting averages those
probabilities, so a badly calibrated member sways the vote more (or less) than its accuracy earns.
- expected_calibration_error: the top-label ECE (equal-width confidence bins, weighted by their size).
- reliability: the per-bin table behind a reliability diagram.
- fit_temperature: the single T that minimises the negative log-likelihood of softmax(log p / T);
  T > 1 softens an over-confident model, T < 1 sharpens an under-confident one. It never changes
  a model's own argmax, only how its probabilities mix with the others'.
- cross_fitted: fit on one half of the people, apply to the other, and the reverse, so a figure
  reported on the validation people is never fitted on the same people.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import pandas as pd

T = TypeVar("T")
BINS = 10
TEMPERATURE_RANGE = (0.05, 20.0)


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = BINS) -> float:
    """Top-label expected calibration error: sum over confidence bins of |accuracy - confidence| x share of items."""
    table = reliability(probs, y_true, bins)
    if table["count"].sum() == 0:
        return 0.0
    return float((table["count"] * (table["accuracy"] - table["confidence"]).abs()).sum() / table["count"].sum())


def reliability(probs: np.ndarray, y_true: np.ndarray, bins: int = BINS) -> pd.DataFrame:
    """Per confidence bin (equal width on [0, 1]): lower edge, mean confidence, accuracy, count (empty bins: count 0)."""
    probs, y_true = np.asarray(probs, dtype=np.float64), np.asarray(y_true)
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == y_true
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_conf = np.bincount(which, weights=confidence, minlength=bins) / count
        accuracy = np.bincount(which, weights=correct.astype(float), minlength=bins) / count
    return pd.DataFrame(
        {"lower": np.arange(bins) / bins, "confidence": np.nan_to_num(mean_conf), "accuracy": np.nan_to_num(accuracy), "count": count}
    )


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T), row by row (T = 1 gives p back)."""
    logits = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, None)) / float(temperature)
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def fit_temperature(probs: np.ndarray, y_true: np.ndarray) -> float:
    """The temperature minimising the mean negative log-likelihood of the true classes (bounded, on log T)."""
    from scipy.optimize import minimize_scalar

    y_true = np.asarray(y_true, dtype=int)
    if len(y_true) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        return float(-np.log(apply_temperature(probs, np.exp(log_t))[np.arange(len(y_true)), y_true] + 1e-12).mean())

    low, high = np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1])
    found = minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-3})
    return float(np.exp(found.x)) if nll(found.x) < nll(0.0) else 1.0  # never worse than leaving the model as it is


def halves(groups: Sequence[str]) -> np.ndarray:
    """0/1 per item: which half of the people it belongs to — people ordered by a hash of their id (stable across
    runs, unrelated to their labels) and dealt alternately, so the halves differ by at most one person."""
    people = sorted(set(map(str, groups)), key=lambda g: hashlib.sha256(g.encode()).hexdigest())
    side = {g: i % 2 for i, g in enumerate(people)}
    return np.array([side[str(g)] for g in groups], dtype=np.int8)


def cross_fitted(groups: Sequence[str], fit: Callable[[np.ndarray], T], apply: Callable[[T, np.ndarray], np.ndarray]) -> np.ndarray | None:
    """Items' outputs where what is applied to one half of the people was fitted on the other half only.

    `fit(mask)` fits on the items in `mask`; `apply(fitted, mask)` returns the outputs for the items in `mask`
    (rows in order). None when the people do not split into two non-empty halves (fewer than two people)."""
    half = halves(groups)
    if half.min() == half.max():
        return None
    parts = {}
    for side in (0, 1):
        held = half == side
        parts[side] = (held, apply(fit(~held), held))
    first = parts[0][1]
    out = np.zeros((len(half), *np.shape(first)[1:]), dtype=np.asarray(first).dtype)
    for held, values in parts.values():
        out[held] = values
    return out
