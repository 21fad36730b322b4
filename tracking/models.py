"""The MLflow side of a variant's model: its run's inputs and per-epoch metrics, the evaluation
artifacts, the pt2 model, and — only once the model passed its quality check — its registered version."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import torch

from maskops.data import TrainingData
from maskops.evaluation import ModelEvaluation
from maskops.labels import CLASS_NAMES
from maskops.options import as_dict
from maskops.train import TrainConfig, TrainResult, serving_model
from maskops.variants import crops_name, model_name
from tracking.service import InputTable, LoggedModel, TrackedRun, TrackingService, dagster_run_markdown, pinned

QUALITY_TAG = "maskops.quality"


def registered_name(variant: str) -> str:
    return f"maskops-{variant}"


def log_training_start(run: TrackedRun, variant: str, cfg: TrainConfig, data: TrainingData, preset: str) -> None:
    """Settings and the two sets the run reads (their image ids, people, labels and crop keys)."""
    run.log_params(
        {
            **as_dict(cfg),
            "variant": variant,
            "preset": preset,
            "train_images": len(data.train),
            "val_images": len(data.val),
            "mask_only_images": data.mask_only_images,
        }
    )
    columns = ["image_id", "profile_id", "class_id", "crop_key"]
    run.log_inputs([
        InputTable(data.train[columns].astype({"class_id": int}), f"{crops_name(variant)} (training)", f"dagster asset {crops_name(variant)}",
                   "training", "class_id"),
        InputTable(data.val[columns].astype({"class_id": int}), "relabeled_crops (validation)", "dagster asset relabeled_crops",
                   "validation", "class_id"),
    ])  # fmt: skip


def epoch_metric(name: str) -> str:
    """The name of a per-epoch series in MLflow: validation scores as epoch_val_* (the val_* names hold the model's
    own scores, those of its best epoch, as in Dagster); the training loss, learning rate and speed as they are."""
    return f"epoch_{name}" if name.startswith("val_") else name


def epoch_logger(run: TrackedRun, log: Callable[[str], None]) -> Callable[[int, dict[str, float]], None]:
    """An `on_epoch` callback: every epoch's metrics to MLflow (step = epoch) and a line to the log."""

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        run.log_metrics({epoch_metric(k): v for k, v in metrics.items() if k != "epoch"}, step=epoch)
        log(f"epoch {epoch}: val macro F1 {metrics['val_macro_f1']:.3f}")

    return on_epoch


def log_trained_model(run: TrackedRun, cfg: TrainConfig, result: TrainResult, evaluation: ModelEvaluation, crop_recipe: str) -> LoggedModel:
    """The model's validation metrics (its best epoch's weights: the numbers Dagster shows), the evaluation artifacts
    and the model as a pt2 graph (not yet registered)."""
    run.log_metrics({**{f"val_{k}": v for k, v in result.val_metrics.items()}, "best_epoch": result.best_epoch,
                     "trainable_parameters": result.trainable_parameters, "train_images_per_second": result.train_images_per_second})  # fmt: skip
    run.log_files({**evaluation.figures, "per_class_report.csv": evaluation.per_class, "config.json": json.dumps(as_dict(cfg), indent=2),
                   "history.json": json.dumps(result.history, indent=2), "crop_recipe.json": crop_recipe}, "evaluation")  # fmt: skip
    # a batch of 2 lets MLflow mark the batch dimension dynamic in the signature
    example = np.zeros((2, 3, cfg.image_size, cfg.image_size), dtype=np.float32)
    metadata = {"image_size": cfg.image_size, "classes": list(CLASS_NAMES), "input": "RGB crops, ImageNet-normalised, NCHW float32",
                "crop_recipe": crop_recipe, "architecture": {"backbone": cfg.backbone, "head": cfg.head}}  # fmt: skip
    return run.log_pytorch_model(serving_model(result.model), example, metadata, pinned("torch", "mlflow"))


def model_faults(model: torch.nn.Module) -> list[str]:
    """Names of the tensors holding a NaN or an infinity."""
    return [name for name, p in model.state_dict().items() if p.is_floating_point() and not torch.isfinite(p).all()]


def model_description(variant: str) -> str:
    """What maskops-<variant> is, for its page in the registry."""
    return (f"Face-attribute classifier, 18 classes (mask state x gender x age group), trained on the **{variant}** dataset "
            f"variant (Dagster asset `{model_name(variant)}`, data `{crops_name(variant)}`) and validated on the shared validation people "
            "with the relabeled labels. A version is registered only when its `model_quality` check passed; the ensemble "
            "(maskops-ensemble) combines the four variants.")  # fmt: skip


def version_description(variant: str, quality: dict, run_id: str, dagster_run_url: str) -> str:
    """One registered version: what it is, its data variant, its validation score and the runs that made it."""
    made = f"; Dagster run {dagster_run_markdown(dagster_run_url)}" if dagster_run_url else ""
    return (f"{model_name(variant)} trained on the {variant} variant: validation macro F1 {quality['val_macro_f1']:.4f} "
            f"(floor {quality['floor']}); MLflow run {run_id}{made}.")  # fmt: skip


def register_passing(service: TrackingService, variant: str, logged: LoggedModel, quality: dict) -> str:
    """A version of maskops-<variant> for a model that passed its quality check; asking again returns the same version."""
    name = registered_name(variant)
    existing = service.version_of(name, logged)
    if existing is not None:
        return existing
    description = version_description(variant, quality, logged.run_id, service.dagster_run_link(logged.run_id))
    tags = {QUALITY_TAG: json.dumps(quality), "maskops.variant": variant, "maskops.val_macro_f1": f"{quality['val_macro_f1']:.4f}"}
    return service.register(name, logged, tags=tags, description=description, model_description=model_description(variant))


def model_record(variant: str, logged: LoggedModel, cfg: TrainConfig, result: TrainResult, data: TrainingData) -> dict:
    """What <variant>_model hands downstream (a small JSON record, never the model itself)."""
    return {
        "variant": variant, "run_id": logged.run_id, "model_id": logged.model_id, "artifact_location": logged.artifact_location,
        "model_uri": logged.uri, "registered_model": registered_name(variant), "image_size": cfg.image_size,
        "crop_recipe": data.crop_recipe, "val_metrics": result.val_metrics, "best_epoch": result.best_epoch,
        "trainable_parameters": result.trainable_parameters, "total_parameters": result.total_parameters,
        "train_images": len(data.train), "val_images": len(data.val), "device": result.device,
    }  # fmt: skip


def logged_model(record: dict) -> LoggedModel:
    return LoggedModel(record["model_id"], record["run_id"], record["artifact_location"])
