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


def old_f1(y_true: np.ndarray, probabilities: np.ndarray) -> float | None:
    """F1 of the rare 60+ age group against the rest (what the generated variant is for); None when nobody is 60+
    in the truth or the predictions (undefined, not zero)."""
    from sklearn.metrics import f1_score

    truth, predicted = np.asarray(y_true, dtype=int) % 3 == 2, np.asarray(probabilities).argmax(axis=1) % 3 == 2
    return float(f1_score(truth, predicted)) if truth.any() or predicted.any() else None


def macro_f1_fast(y_true: np.ndarray, y_pred: np.ndarray, classes: int = NUM_CLASSES) -> float:
    """evaluate()'s macro F1 (over the classes present in truth or predictions) without sklearn's overhead, for resampling."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)  # int8 labels would overflow
    counts = np.bincount(y_true * classes + y_pred, minlength=classes * classes).reshape(classes, classes)
    tp, support, predicted = np.diag(counts), counts.sum(axis=1), counts.sum(axis=0)
    present = (support + predicted) > 0
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros(classes), where=present)
    return float(f1[present].mean()) if present.any() else 0.0


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
