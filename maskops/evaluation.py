"""What a trained model is judged by on the validation people: metrics over the whole set, the
confusion matrix, a per-class report and a Grad-CAM grid of fixed validation images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from maskops.figures import confusion_png, gradcam_grid_png, prediction_captions
from maskops.gradcam import gradcam
from maskops.metrics import confusion, per_class_report


@dataclass
class ModelEvaluation:
    metrics: dict[str, float]
    confusion: np.ndarray
    per_class: pd.DataFrame
    figures: dict[str, bytes]  # confusion_matrix.png, gradcam.png


def evaluate_model(result, val_images: torch.Tensor, y_val: np.ndarray, title: str, gradcam_images: int = 16) -> ModelEvaluation:
    """`result` is a TrainResult; the Grad-CAM sample is fixed (seed 0), so runs compare image for image."""
    y_val = np.asarray(y_val, dtype=int)
    matrix = confusion(y_val, result.val_probabilities)
    sample = np.random.default_rng(0).choice(len(y_val), size=min(gradcam_images, len(y_val)), replace=False)
    predicted = result.val_probabilities[sample].argmax(axis=1)
    captions = prediction_captions(y_val[sample], predicted)
    figures = {
        "confusion_matrix.png": confusion_png(matrix, f"{title}: validation"),
        "gradcam.png": gradcam_grid_png(val_images[sample], gradcam(result.model, val_images[sample]), captions),
    }
    return ModelEvaluation(dict(result.val_metrics), matrix, per_class_report(y_val, result.val_probabilities), figures)
