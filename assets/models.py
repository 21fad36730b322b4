"""model/<variant>: one model per dataset variant, each an MLflow run and a registered version.

All variants are validated on the same people (the validation fold) with the best labels
available (the relabeled ones), so their scores compare.
"""

import json
import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from assets.policies import DOWNSTREAM, IMAGE_MODELS_POOL
from maskops.data import decode_all
from maskops.gradcam import gradcam, gradcam_grid
from maskops.labels import CLASS_NAMES
from maskops.layout import fingerprint
from maskops.metrics import confusion, confusion_png, per_class_report
from maskops.reports import png_markdown
from maskops.splits import TRAIN, VALIDATION, assign_split
from maskops.train import PRESETS, config_from, serving_model, train_model
from resources import CompetitionDataset, Compute, ImageStoreResource, MlflowTracking

VARIANTS = ("raw", "relabeled", "cleaned", "generated")
TRAIN_CODE_VERSION = "1"


class TrainingConfig(dg.Config):
    """A preset ('demo' for the CPU demo, 'seed-best' for the original's best model) and any field to override."""

    preset: str = Field(default="demo", description=f"One of {sorted(PRESETS)}.")
    backbone: str | None = Field(default=None, description="Any timm model name.")
    pretrained: bool | None = None
    pretrained_file: str | None = Field(default=None, description="Local .pth/.safetensors weights for the backbone.")
    image_size: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    optimizer: str | None = Field(default=None, description="adamw or sgd")
    warmup_epochs: float | None = None
    loss: str | None = Field(default=None, description="ce, label_smoothing, focal or f1")
    focal_gamma: float | None = None
    focal_alpha: str | None = Field(default=None, description="none, inverse_frequency or a number")
    label_smoothing: float | None = None
    class_weights: bool | None = None
    head: str | None = Field(default=None, description="multiclass, hard (one backbone, three heads) or soft (cross-stitch)")
    task_weights: list[float] | None = Field(default=None, description="mask, gender, age loss weights (the original: 0.05, 0.05, 0.9)")
    freeze_stem: bool | None = None
    freeze_stages: int | None = Field(default=None, description="Freeze stages 0..n-1 (the original's best: stem + 2)")
    freeze_patterns: list[str] | None = Field(default=None, description="Regexes of parameter names to freeze")
    sampler: str | None = Field(default=None, description="weighted (1 / class frequency) or shuffle")
    augment: bool | None = None
    augment_flip: bool | None = None
    augment_scale: float | None = Field(default=None, description="Random zoom-in up to this fraction (with a shift).")
    augment_jitter: float | None = Field(default=None, description="Brightness and contrast jitter.")
    drop: float | None = None
    seed: int | None = None
    patience: int | None = Field(default=None, description="Early stopping: epochs without a better validation macro F1")
    gradcam_images: int = Field(default=16, description="Validation images in the Grad-CAM grid.")

    def resolved(self, device: str):
        overrides = {k: v for k, v in self.model_dump().items() if k not in ("preset", "gradcam_images")}
        return config_from(self.preset, **overrides, device=device)


def _usable(crops: pd.DataFrame) -> pd.DataFrame:
    return crops[crops["crop_path"].notna()].reset_index(drop=True)


def build_model_asset(variant: str) -> dg.AssetsDefinition:
    ins = {"crops": dg.AssetIn(["cropped", variant]), "profile_split": dg.AssetIn("profile_split")}
    if variant != "relabeled":  # validation always uses the relabeled crops of the validation fold
        ins["validation_crops"] = dg.AssetIn(["cropped", "relabeled"])
    spec = dict(
        key=["model", variant], ins=ins, group_name="models", kinds={"pytorch", "mlflow"}, code_version=TRAIN_CODE_VERSION,
        io_manager_key="record_io_manager", pool=IMAGE_MODELS_POOL, automation_condition=DOWNSTREAM,
        description=f"A model trained on the {variant} variant's training profiles, validated on the shared validation fold "
        f"(relabeled labels); an MLflow run and a version of the registered model maskops-{variant}.",
    )  # fmt: skip
    if variant == "relabeled":

        @dg.asset(**spec)
        def model(context: dg.AssetExecutionContext, config: TrainingConfig, crops: pd.DataFrame, profile_split: pd.DataFrame,
                  dataset: CompetitionDataset, image_store: ImageStoreResource, mlflow: MlflowTracking, compute: Compute) -> dg.MaterializeResult:  # fmt: skip
            return train_variant(variant, context, config, crops, crops, profile_split, dataset, image_store, mlflow, compute)

    else:

        @dg.asset(**spec)
        def model(context: dg.AssetExecutionContext, config: TrainingConfig, crops: pd.DataFrame, validation_crops: pd.DataFrame,
                  profile_split: pd.DataFrame, dataset: CompetitionDataset, image_store: ImageStoreResource, mlflow: MlflowTracking,
                  compute: Compute) -> dg.MaterializeResult:  # fmt: skip
            return train_variant(variant, context, config, crops, validation_crops, profile_split, dataset, image_store, mlflow, compute)

    return model


def train_variant(
    variant: str,
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    crops: pd.DataFrame,
    validation_crops: pd.DataFrame,
    profile_split: pd.DataFrame,
    dataset: CompetitionDataset,
    image_store: ImageStoreResource,
    mlflow: MlflowTracking,
    compute: Compute,
) -> dg.MaterializeResult:
    """Train one variant's model, track it in MLflow and register it; returns the small record."""
    import mlflow as mlf

    cfg = config.resolved(compute.device)
    if compute.threads:
        import torch

        torch.set_num_threads(compute.threads)
    train = assign_split(_usable(crops), profile_split)
    train = train[train["role"] == TRAIN].reset_index(drop=True)
    val = assign_split(_usable(validation_crops), profile_split)
    val = val[val["role"] == VALIDATION].reset_index(drop=True)
    source = image_store.source(dataset.root)
    context.log.info(f"decoding {len(train)} training and {len(val)} validation crops at {cfg.image_size}px")
    train_images = decode_all(list(train["crop_path"]), source.open_rgb, cfg.image_size)
    val_images = decode_all(list(val["crop_path"]), source.open_rgb, cfg.image_size)
    data_version = fingerprint(train, ("image_id", "crop_key", "class_id"))
    tags = {
        "dagster.run_id": context.run.run_id, "dagster.asset_key": context.asset_key.to_user_string(),
        "maskops.code_version": TRAIN_CODE_VERSION, "maskops.input_data_version": data_version, "maskops.variant": variant,
    }  # fmt: skip
    checkpoints = Path(compute.checkpoints_dir) / variant
    with mlflow.run(f"model/{variant}", tags) as run, tempfile.TemporaryDirectory() as tmp:
        mlf.log_params({**cfg.as_params(), "variant": variant, "train_images": len(train), "val_images": len(val), "preset": config.preset})
        for frame, name, ctx in ((train, f"cropped/{variant}", "training"), (val, "cropped/relabeled", "validation")):
            table = frame[["image_id", "profile_id", "class_id", "crop_key"]].astype({"class_id": int})
            mlf.log_input(
                mlf.data.from_pandas(table, source=f"dagster asset {name}", name=f"{name} ({ctx})", targets="class_id"), context=ctx
            )
        result = train_model(
            train_images, train["class_id"].to_numpy(), val_images, val["class_id"].to_numpy(), cfg, checkpoints,
            on_epoch=lambda epoch, m: (mlf.log_metrics({k: float(v) for k, v in m.items() if k != "epoch"}, step=epoch),
                                       context.log.info(f"epoch {epoch}: val macro F1 {m['val_macro_f1']:.3f}")),
        )  # fmt: skip
        metrics = {f"best_val_{k}": v for k, v in result.val_metrics.items()}
        mlf.log_metrics(
            {**metrics, "trainable_parameters": result.trainable_parameters, "train_images_per_second": result.train_images_per_second}
        )
        y_val = val["class_id"].to_numpy()
        matrix = confusion(y_val, result.val_probabilities)
        confusion_image = confusion_png(matrix, f"model/{variant}: validation")
        sample = np.random.default_rng(0).choice(len(val), size=min(config.gradcam_images, len(val)), replace=False)
        heat = gradcam(result.model, val_images[sample])
        predicted = result.val_probabilities[sample].argmax(axis=1)
        grid = gradcam_grid(val_images[sample], heat, [f"{y_val[i]}->{p}" for i, p in zip(sample, predicted, strict=True)])
        folder = Path(tmp)
        (folder / "confusion_matrix.png").write_bytes(confusion_image)
        (folder / "gradcam.png").write_bytes(grid)
        per_class_report(y_val, result.val_probabilities).to_csv(folder / "per_class_report.csv", index=False)
        (folder / "config.json").write_text(json.dumps({**cfg.as_params(), "variant": variant}, indent=2))
        (folder / "history.json").write_text(json.dumps(result.history, indent=2))
        for name in ("confusion_matrix.png", "gradcam.png", "per_class_report.csv", "config.json", "history.json"):
            mlf.log_artifact(str(folder / name), artifact_path="evaluation")
        # pt2 (torch.export): a traced graph, loaded without maskops' code and without unpickling;
        # the example's batch of 2 lets MLflow mark the batch dimension dynamic in the signature
        example = np.zeros((2, 3, cfg.image_size, cfg.image_size), dtype=np.float32)
        info = mlf.pytorch.log_model(
            serving_model(result.model), name="model", input_example=example, serialization_format="pt2",
            registered_model_name=f"maskops-{variant}", pip_requirements=_requirements(),
            metadata={"image_size": cfg.image_size, "classes": list(CLASS_NAMES), "input": "RGB crops, ImageNet-normalised, NCHW float32"},
        )  # fmt: skip
        run_id, experiment_id = run.info.run_id, run.info.experiment_id
    (checkpoints / "last.pt").unlink(missing_ok=True)  # tracked and registered: the crash-recovery checkpoint has done its job
    version = str(info.registered_model_version)
    record = {
        "variant": variant, "run_id": run_id, "experiment_id": experiment_id, "registered_model": f"maskops-{variant}", "version": version,
        "model_uri": f"models:/maskops-{variant}/{version}", "image_size": cfg.image_size, "val_metrics": result.val_metrics,
        "best_epoch": result.best_epoch, "trainable_parameters": result.trainable_parameters, "total_parameters": result.total_parameters,
        "train_images": len(train), "val_images": len(val), "device": result.device,
    }  # fmt: skip
    context.log.info(f"model/{variant}: validation macro F1 {result.val_metrics['macro_f1']:.3f}, registered {record['model_uri']}")
    return dg.MaterializeResult(
        value=record,
        data_version=dg.DataVersion(f"{run_id[:12]}"),
        metadata={
            **{f"val_{k}": dg.MetadataValue.float(round(v, 4)) for k, v in result.val_metrics.items()},
            "model_uri": dg.MetadataValue.text(record["model_uri"]),
            "mlflow_run": (dg.MetadataValue.url if mlflow.ui_url else dg.MetadataValue.text)(mlflow.run_link(experiment_id, run_id)),
            "trainable_parameters": dg.MetadataValue.int(result.trainable_parameters),
            "total_parameters": dg.MetadataValue.int(result.total_parameters),
            "best_epoch": dg.MetadataValue.int(result.best_epoch),
            "epochs_run": dg.MetadataValue.int(len(result.history)),
            "resumed_from_epoch": dg.MetadataValue.int(-1 if result.resumed_from_epoch is None else result.resumed_from_epoch),
            "train_images_per_second": dg.MetadataValue.float(round(result.train_images_per_second, 2)),
            "confusion_matrix": dg.MetadataValue.md(png_markdown(confusion_image, "confusion matrix")),
            "gradcam": dg.MetadataValue.md(png_markdown(grid, "Grad-CAM")),
        },
    )


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"torch=={version('torch')}", f"timm=={version('timm')}", f"mlflow=={version('mlflow')}", "maskops"]


model_assets = [build_model_asset(v) for v in VARIANTS]


class ModelCheckConfig(dg.Config):
    min_val_macro_f1: float = Field(default=0.1, description="The lowest validation macro F1 a model may have.")


def build_model_check(variant: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=["model", variant],
        name="model_quality",
        blocking=True,
        description="Validation macro F1 at least the floor; every weight finite.",
    )
    def check(config: ModelCheckConfig, record: dict, mlflow: MlflowTracking) -> dg.AssetCheckResult:
        import mlflow as mlf
        import torch

        mlflow.activate()
        model = mlf.pytorch.load_model(record["model_uri"], map_location="cpu")
        nonfinite = [name for name, p in model.state_dict().items() if p.is_floating_point() and not torch.isfinite(p).all()]
        f1 = float(record["val_metrics"]["macro_f1"])
        passed = not nonfinite and f1 >= config.min_val_macro_f1
        return dg.AssetCheckResult(
            passed=passed,
            metadata={
                "val_macro_f1": dg.MetadataValue.float(round(f1, 4)),
                "floor": dg.MetadataValue.float(config.min_val_macro_f1),
                "non_finite_tensors": dg.MetadataValue.json(nonfinite[:20]),
                "model_uri": dg.MetadataValue.text(record["model_uri"]),
            },
        )

    return check


model_checks = [build_model_check(v) for v in VARIANTS]
