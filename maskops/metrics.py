"""Validation metrics over the whole set (never averaged over batches): macro F1 on the 18
classes and on each task, accuracy, the confusion matrix and a per-class report."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from maskops.labels import CLASS_NAMES, NUM_CLASSES


def evaluate(y_true: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Macro F1 (classes present in truth or predictions), per-task macro F1 and accuracy."""
    from sklearn.metrics import accuracy_score, f1_score

    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(probabilities).argmax(axis=1)
    result = {
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
    }
    for task, part in (("mask", lambda y: y // 6), ("gender", lambda y: (y // 3) % 2), ("age", lambda y: y % 3)):
        result[f"{task}_f1"] = float(f1_score(part(y_true), part(y_pred), average="macro", zero_division=0))
    return result


def confusion(y_true: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(np.asarray(y_true, dtype=int), np.asarray(probabilities).argmax(axis=1), labels=list(range(NUM_CLASSES)))


def per_class_report(y_true: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        np.asarray(y_true, dtype=int), np.asarray(probabilities).argmax(axis=1), labels=list(range(NUM_CLASSES)), zero_division=0
    )
    return pd.DataFrame(
        {"class_id": range(NUM_CLASSES), "class": CLASS_NAMES, "precision": precision, "recall": recall, "f1": f1, "support": support}
    )


def _draw_confusion(ax, matrix: np.ndarray, title: str, fontsize: float, ticks: range) -> None:
    ax.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=fontsize, color="white" if v > matrix.max() / 2 else "black")
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.tick_params(labelsize=6)
    ax.set_xlabel("predicted class", fontsize=8)
    ax.set_ylabel("true class", fontsize=8)
    ax.set_title(title, fontsize=9)


def _png(fig) -> bytes:
    from matplotlib import pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def confusion_png(matrix: np.ndarray, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5.2), dpi=80)
    _draw_confusion(ax, matrix, title, 6, range(NUM_CLASSES))
    return _png(fig)


def confusion_grid_png(matrices: dict[str, np.ndarray], columns: int = 3) -> bytes:
    """Confusion matrices side by side, one panel per model, each on its own colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = -(-len(matrices) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 4.2 * rows), dpi=70, squeeze=False)
    for ax in axes.flat[len(matrices) :]:
        ax.axis("off")
    for ax, (title, matrix) in zip(axes.flat, matrices.items(), strict=False):
        accuracy = np.trace(matrix) / max(int(matrix.sum()), 1)
        _draw_confusion(ax, matrix, f"{title} (accuracy {accuracy:.3f})", 4.5, range(0, NUM_CLASSES, 3))
    return _png(fig)
