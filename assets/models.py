"""<variant>_model: one model per dataset variant, each an MLflow run; registered as a version of
maskops-<variant> once its blocking model_quality check passed.

All variants are validated on the same people (the validation fold) with the best labels
available (the relabeled ones), so their scores compare.
"""

from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.catalog import MODELS, WEEKLY
from assets.config import overrides, settings_config
from assets.metadata import mlflow_tags
from assets.policies import GPU_POOL, stage, with_its_asset
from maskops.files import write_atomic
from maskops.layout import fingerprint
from maskops.settings import Settings
from maskops.train_config import PRESETS, TrainConfig, config_from
from maskops.variants import VARIANTS, crops_name, model_name
from resources import CompetitionDataset, Compute, ImageStoreResource, MlflowTracking, ReportFiles
from resources.runs import live_run_ids

TRAIN_CODE_VERSION = "3"  # 3: mask-only photos join the training set


class TrainingConfig(settings_config(TrainConfig, optional=True, exclude=("device",))):
    """A preset ('demo': pretrained EfficientNet-Lite0 sized for the CPU demo; 'scratch': random init, nothing to
    provision; 'gpu-lite2', 'seed-best' for a GPU) and any field of maskops.train.TrainConfig to override; the device
    comes from the compute resource."""

    preset: str = Field(default="demo", description=f"One of {sorted(PRESETS)}.")
    gradcam_images: int = Field(default=16, description="Validation images in the Grad-CAM grid.")
    mask_only_photos: bool = Field(
        default=True,
        description="Train the mask task on mask_only_crops too (photos whose mask state alone is known, e.g. the real faces "
        "`maskops synth` writes under mask_only/); nothing changes when there are none.",
    )

    def train_config(self, device: str) -> TrainConfig:
        return config_from(self.preset, **overrides(TrainConfig, self), device=device)


def build_model_asset(variant: str) -> dg.AssetsDefinition:
    ins = {"crops": dg.AssetIn(crops_name(variant)), "profile_split": dg.AssetIn("profile_split"),
           "mask_only_crops": dg.AssetIn(crops_name("mask_only"))}  # fmt: skip
    if variant != "relabeled":  # validation always uses the relabeled crops of the validation fold
        ins["validation_crops"] = dg.AssetIn("relabeled_crops")
    spec = dict(
        key=model_name(variant), ins=ins, group=MODELS, tags={"variant": variant}, kinds=("pytorch", "mlflow"),
        code_version=TRAIN_CODE_VERSION, io_manager_key="record_io_manager", pool=GPU_POOL, freshness_policy=WEEKLY,
        description=f"A model trained on the {variant} variant's training profiles, validated on the shared validation fold "
        f"(relabeled labels); an MLflow run, registered as a version of maskops-{variant} when model_quality passes.",
    )  # fmt: skip
    if variant == "relabeled":

        @stage(**spec)
        def model(context: dg.AssetExecutionContext, config: TrainingConfig, crops: pd.DataFrame, profile_split: pd.DataFrame,
                  mask_only_crops: pd.DataFrame, dataset: CompetitionDataset, image_store: ImageStoreResource, tracking: MlflowTracking,
                  compute: Compute, reports: ReportFiles) -> dg.MaterializeResult:  # fmt: skip
            return train_variant(variant, context, config, crops, crops, profile_split, mask_only_crops, dataset, image_store, tracking,
                                 compute, reports)  # fmt: skip

    else:

        @stage(**spec)
        def model(context: dg.AssetExecutionContext, config: TrainingConfig, crops: pd.DataFrame, validation_crops: pd.DataFrame,
                  profile_split: pd.DataFrame, mask_only_crops: pd.DataFrame, dataset: CompetitionDataset, image_store: ImageStoreResource,
                  tracking: MlflowTracking, compute: Compute, reports: ReportFiles) -> dg.MaterializeResult:  # fmt: skip
            return train_variant(variant, context, config, crops, validation_crops, profile_split, mask_only_crops, dataset, image_store,
                                 tracking, compute, reports)  # fmt: skip

    return model


def train_variant(
    variant: str, context: dg.AssetExecutionContext, config: TrainingConfig, crops: pd.DataFrame, validation_crops: pd.DataFrame,
    profile_split: pd.DataFrame, mask_only_crops: pd.DataFrame, dataset: CompetitionDataset, image_store: ImageStoreResource,
    tracking: MlflowTracking, compute: Compute, reports: ReportFiles,
) -> dg.MaterializeResult:  # fmt: skip
    """Train one variant's model and track it in MLflow; returns the small record."""
    # torch and MLflow are imported when a model trains, so the code location loads without them
    from maskops.data import training_data
    from maskops.evaluation import evaluate_model
    from maskops.train import train_model
    from tracking.models import epoch_logger, log_trained_model, log_training_start, model_record

    cfg = config.train_config(compute.device)
    compute.apply_threads()
    data = training_data(crops, validation_crops, profile_split, image_store.source(dataset.root).open_rgb, cfg.image_size,
                         mask_only_crops if config.mask_only_photos else None)  # fmt: skip
    context.log.info(f"decoded {len(data.train)} training ({data.mask_only_images} of them mask-only) and {len(data.val)} validation "
                     f"crops at {cfg.image_size}px")  # fmt: skip
    tags = {**mlflow_tags(context, TRAIN_CODE_VERSION), "maskops.variant": variant,
            "maskops.input_data_version": fingerprint(data.train, ("image_id", "crop_key", "class_id"))}  # fmt: skip
    checkpoints = Path(compute.checkpoints_dir) / variant
    with _training_run(context, tracking, model_name(variant), tags, checkpoints, cfg, data) as run:
        log_training_start(run, variant, cfg, data, config.preset)
        result = train_model(data.train_images, data.train_labels, data.val_images, data.val_labels, cfg, checkpoints,
                             epoch_logger(run, context.log.info))  # fmt: skip
        evaluation = evaluate_model(result, data.val_images, data.val_labels, model_name(variant), config.gradcam_images)
        logged = log_trained_model(run, cfg, result, evaluation, data.crop_recipe)
    if result.discarded_checkpoint:
        context.log.warning(
            f"{model_name(variant)}: the checkpoint could not be resumed and was set aside as {result.discarded_checkpoint}"
        )
    record = model_record(variant, logged, cfg, result, data)
    context.log.info(f"{model_name(variant)}: validation macro F1 {result.val_metrics['macro_f1']:.3f}, logged as {logged.uri}")
    resumed = {} if result.resumed_from_epoch is None else {"resumed_from_epoch": dg.MetadataValue.int(result.resumed_from_epoch)}
    return dg.MaterializeResult(value=record, data_version=dg.DataVersion(logged.run_id[:12]), metadata={
        **{f"val_{k}": dg.MetadataValue.float(round(v, 4)) for k, v in result.val_metrics.items()},
        "model_uri": dg.MetadataValue.text(record["model_uri"]),
        "mlflow_run": tracking.run_link(run),
        **{k: dg.MetadataValue.int(record[k]) for k in ("trainable_parameters", "total_parameters", "best_epoch")},
        "epochs_run": dg.MetadataValue.int(len(result.history)), **resumed,
        "mask_only_images": dg.MetadataValue.int(data.mask_only_images),
        **({"discarded_checkpoint": dg.MetadataValue.path(result.discarded_checkpoint)} if result.discarded_checkpoint else {}),
        "train_images_per_second": dg.MetadataValue.float(round(result.train_images_per_second, 2)),
        **{name[:-4]: reports.figure(model_name(variant), name[:-4], png) for name, png in evaluation.figures.items()},
    })  # fmt: skip


RUN_ID_FILE = "mlflow_run_id"  # next to the checkpoint: the MLflow run a killed training resumes into


@contextmanager
def _training_run(context: dg.AssetExecutionContext, tracking: MlflowTracking, name: str, tags: dict, checkpoints: Path, cfg, data):
    """The MLflow run a model trains `cfg` on `data` in. Runs of this asset left RUNNING by a killed Dagster run are
    closed as KILLED; when training will resume from a crash-recovery checkpoint (same settings, same data), it resumes
    into the run the checkpoint was saved from, so every epoch's metrics end up in one run. Otherwise a new run: the
    old one's parameters (other epochs, another seed, other photos) cannot change, and reopening it once failed every
    later attempt of the step. Once the body succeeds the checkpoint has done its job (the run tracks the model)."""
    from maskops.train import CHECKPOINT, data_fingerprint, set_aside, will_resume

    checkpoint = checkpoints / CHECKPOINT  # the data's fingerprint (a pass over every image) only when there is one
    resumes = checkpoint.exists() and will_resume(
        checkpoints, cfg, data_fingerprint(data.train_images, data.train_labels, data.val_images, data.val_labels)
    )
    if not resumes and checkpoint.exists():  # another run's: never paired with this run's id (kept aside)
        set_aside(checkpoint)
    service = tracking.service()
    # process ids tell a dead run only where runs execute on this machine (the local profile)
    live = live_run_ids(context.instance, check_processes=not Settings.from_env().production)
    for key in (context.asset_key.to_user_string(), f"model/{name.removesuffix('_model')}"):  # and the key before 2026-11-28
        service.close_abandoned_runs(key, live)
    run_file = checkpoints / RUN_ID_FILE
    resume = run_file.read_text().strip() if resumes and run_file.exists() else None
    with service.run(name, tags, resume_run_id=resume) as run:
        checkpoints.mkdir(parents=True, exist_ok=True)
        write_atomic(run_file, run.run_id.encode())
        yield run
    (checkpoints / CHECKPOINT).unlink(missing_ok=True)
    run_file.unlink(missing_ok=True)


model_assets = [build_model_asset(v) for v in VARIANTS]


class ModelCheckConfig(dg.Config):
    min_val_macro_f1: float = Field(default=0.1, description="The lowest validation macro F1 a model may have.")


def build_model_check(variant: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=model_name(variant), name="model_quality", blocking=True, automation_condition=with_its_asset(model_name(variant)),
                    description=f"Validation macro F1 at least the floor and every weight finite (read back from MLflow); "
                    f"a model that passes becomes a version of maskops-{variant}, one that fails is never registered.")  # fmt: skip
    def check(config: ModelCheckConfig, record: dict, tracking: MlflowTracking) -> dg.AssetCheckResult:
        from tracking.models import logged_model, model_faults, register_passing

        service = tracking.service()
        faults = model_faults(service.load_pytorch(record["model_uri"]))
        f1 = float(record["val_metrics"]["macro_f1"])
        passed = not faults and f1 >= config.min_val_macro_f1
        quality = {"val_macro_f1": round(f1, 6), "floor": config.min_val_macro_f1, "non_finite_tensors": faults[:20]}
        version = register_passing(service, variant, logged_model(record), quality) if passed else None
        verdict = (f"validation macro F1 {f1:.3f} {'>=' if f1 >= config.min_val_macro_f1 else '<'} floor {config.min_val_macro_f1}; "
                   f"{len(faults)} non-finite tensors")  # fmt: skip
        return dg.AssetCheckResult(passed=passed, description=verdict, metadata={
            "val_macro_f1": dg.MetadataValue.float(round(f1, 4)), "floor": dg.MetadataValue.float(config.min_val_macro_f1),
            "non_finite_tensors": dg.MetadataValue.json(faults[:20]), "model_uri": dg.MetadataValue.text(record["model_uri"]),
            "registered": tracking.version_link(f"maskops-{variant}", version) if version else dg.MetadataValue.text("no: the check failed"),
        })  # fmt: skip

    return check


model_checks = [build_model_check(v) for v in VARIANTS]
