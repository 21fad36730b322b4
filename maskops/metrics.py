"""Validation metrics over the whole set (never averaged over batches): macro F1 on the 18
classes and on each task, accuracy, the confusion matrix and a per-class report."""

from __future__ import annotations

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
