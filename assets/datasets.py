"""The dataset variants of the original solution, each a manifest derived from its upstream:
relabeled (human corrections), cleaned (exclusions and rules), generated (balanced with
synthetic masks), and the profile split that every variant shares."""

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.metadata import dataset_metadata, sheet_metadata, table_markdown
from assets.policies import DOWNSTREAM, IMAGE_MODELS_POOL
from maskops.cleaning import CleaningRules, clean, parse_exclusions, removal_summary
from maskops.corrections import LABEL_COLUMNS, apply_corrections, parse_corrections
from maskops.faces import Lazy
from maskops.generate import GENERATE_CODE_VERSION, AgeModel, GenerateConfig, generate, plan_generation
from maskops.labels import CLASS_NAMES, MaskState
from maskops.layout import fingerprint
from maskops.splits import TRAIN, assign_split, extend_split, split_profiles
from maskops.store import ImageSource
from resources import CompetitionDataset, FaceDetectorResource, ImageStoreResource, LabelFiles

GROUP = "datasets"
KINDS = {"pandas", "parquet"}


def _result(manifest: pd.DataFrame, metadata: dict) -> dg.MaterializeResult:
    return dg.MaterializeResult(value=manifest, metadata=metadata, data_version=dg.DataVersion(fingerprint(manifest)))


@dg.asset(group_name=GROUP, code_version="1", kinds=KINDS, io_manager_key="manifest_io_manager", automation_condition=DOWNSTREAM)
def relabeled_dataset(
    context: dg.AssetExecutionContext,
    raw_dataset: pd.DataFrame,
    label_corrections: pd.DataFrame,
    labels: LabelFiles,
    dataset: CompetitionDataset,
) -> dg.MaterializeResult:
    """raw_dataset with the human corrections of labels/corrections.csv applied; raw_* columns keep the originals."""
    corrections = parse_corrections(label_corrections, raw_dataset, labels.corrections)
    out = apply_corrections(raw_dataset, corrections)
    out = out.assign(source_profile_id=out["profile_id"], generator="")
    changed = out[out["label_changed"]]
    context.log.info(f"{len(corrections)} corrections from {labels.corrections}: {len(changed)} images relabeled")
    by_field = corrections.groupby("field").size().to_dict()
    return _result(out, {
        **dataset_metadata("relabeled", out, raw_dataset, "raw"),
        "corrections_file": dg.MetadataValue.path(str(labels.corrections)),
        "corrections": dg.MetadataValue.int(len(corrections)),
        "corrections_by_field": dg.MetadataValue.json({f: int(by_field.get(f, 0)) for f in ("gender", "age", "mask")}),
        "relabeled_images": dg.MetadataValue.int(len(changed)),
        "relabeled_profiles": dg.MetadataValue.int(int(changed["profile_id"].nunique())),
        "relabeled_samples": sheet_metadata(
            changed[changed["readable"]], ImageSource(dataset.root).open_rgb, lambda r: f"{r['raw_class_id']}->{r['class_id']} {r['stem'][:7]}"
        ),
        "relabeled_rows": dg.MetadataValue.md(table_markdown(
            changed.assign(before=changed["raw_class_id"].map(lambda c: CLASS_NAMES[c]), after=changed["class_id"].map(lambda c: CLASS_NAMES[c]))
            [["image_id", "before", "after", "correction_reason"]]
        )),
    })  # fmt: skip


class SplitConfig(dg.Config):
    n_folds: int = Field(default=5, description="Folds of profiles (people).")
    validation_fold: int = Field(default=0, description="The fold that validates every variant.")
    seed: int = Field(default=0)
    sticky: bool = Field(
        default=True,
        description="Keep known profiles in their folds and only place new ones (a fresh split when false or when n_folds/seed change).",
    )


def _previous_split(context: dg.AssetExecutionContext, config: SplitConfig) -> pd.DataFrame | None:
    """The last materialized split, if it was made with the same folds and seed."""
    event = context.instance.get_latest_materialization_event(context.asset_key)
    if event is None or event.asset_materialization is None:
        return None
    meta = event.asset_materialization.metadata
    same = meta.get("n_folds") and meta["n_folds"].value == config.n_folds and meta.get("seed") and meta["seed"].value == config.seed
    path = meta.get("path")
    if not same or path is None:
        return None
    try:
        return pd.read_parquet(path.value)
    except (OSError, ValueError) as exc:
        context.log.warning(f"previous split at {path.value} could not be read ({exc}); making a fresh split")
        return None


@dg.asset(group_name=GROUP, code_version="1", kinds=KINDS, io_manager_key="manifest_io_manager", automation_condition=DOWNSTREAM)
def profile_split(context: dg.AssetExecutionContext, config: SplitConfig, relabeled_dataset: pd.DataFrame) -> dg.MaterializeResult:
    """Every profile in one fold, stratified on the best labels available (relabeled); one fold validates all variants.

    Sticky: people keep their fold as data arrives, so validation stays the same people."""
    previous = _previous_split(context, config) if config.sticky else None
    if previous is None:
        split = split_profiles(relabeled_dataset, config.n_folds, config.validation_fold, config.seed)
        kept = 0
    else:
        split = extend_split(previous, relabeled_dataset, config.n_folds, config.validation_fold, config.seed)
        kept = int(split["profile_id"].isin(previous["profile_id"]).sum())
    joined = relabeled_dataset.merge(split, on="profile_id")
    overall = joined["class_id"].value_counts(normalize=True)
    shares = (
        joined.groupby("fold")["class_id"].value_counts(normalize=True).unstack(fill_value=0).reindex(columns=overall.index, fill_value=0)
    )
    deviation = float((shares - overall).abs().to_numpy().max())
    per_fold = split.groupby(["fold", "role"]).size().rename("profiles").reset_index()
    return _result(split, {
        "n_folds": dg.MetadataValue.int(config.n_folds),
        "seed": dg.MetadataValue.int(config.seed),
        "profiles_kept_in_their_fold": dg.MetadataValue.int(kept),
        "profiles_placed": dg.MetadataValue.int(len(split) - kept),
        "profiles": dg.MetadataValue.int(len(split)),
        "validation_profiles": dg.MetadataValue.int(int((split["role"] == "validation").sum())),
        "profiles_per_fold": dg.MetadataValue.md(table_markdown(per_fold)),
        "max_class_share_deviation": dg.MetadataValue.float(round(deviation, 4)),
    })  # fmt: skip


class CleaningConfig(dg.Config):
    drop_unreadable: bool = True
    drop_duplicate_images: bool = Field(default=True, description="Drop exact duplicates by content hash (the first image_id stays).")
    drop_age_band: bool = Field(default=True, description="Drop profiles whose age is in [age_band_low, age_band_high].")
    age_band_low: int = 57
    age_band_high: int = 59


@dg.asset(group_name=GROUP, code_version="1", kinds=KINDS, io_manager_key="manifest_io_manager", automation_condition=DOWNSTREAM)
def cleaned_dataset(
    context: dg.AssetExecutionContext,
    config: CleaningConfig,
    relabeled_dataset: pd.DataFrame,
    label_exclusions: pd.DataFrame,
    labels: LabelFiles,
    dataset: CompetitionDataset,
) -> dg.MaterializeResult:
    """relabeled_dataset minus labels/exclusions.csv and the configured rule-based removals."""
    rules = CleaningRules(
        config.drop_unreadable, config.drop_duplicate_images, (config.age_band_low, config.age_band_high) if config.drop_age_band else None
    )
    exclusions = parse_exclusions(label_exclusions, relabeled_dataset, labels.exclusions)
    kept, removed = clean(relabeled_dataset, exclusions, rules)
    summary = removal_summary(removed)
    context.log.info(f"removed {len(removed)} of {len(relabeled_dataset)} images: {summary.to_dict('records')}")
    return _result(kept, {
        **dataset_metadata("cleaned", kept, relabeled_dataset, "relabeled"),
        "exclusions_file": dg.MetadataValue.path(str(labels.exclusions)),
        "removed_images": dg.MetadataValue.int(len(removed)),
        "removed_profiles": dg.MetadataValue.int(int(removed["profile_id"].nunique())),
        "removed_by_reason": dg.MetadataValue.md(table_markdown(summary)),
        "removed_rows": dg.MetadataValue.md(table_markdown(removed[["image_id", "removal"]])),
        "removed_samples": sheet_metadata(removed[removed["readable"]], ImageSource(dataset.root).open_rgb, lambda r: r["removal"][:18]),
    })  # fmt: skip


class GenerationConfig(dg.Config):
    stage: int = Field(default=1, description="1: top every age group up to the largest; 2: up to twice the largest.")
    seed: int = 0
    min_face_prob: float = Field(default=0.9, description="Sources whose face MTCNN finds with less confidence are skipped.")
    age_model_path: str = Field(default="", description="Image-to-image ONNX applied before masking (off when empty).")
    age_model_group: int = Field(default=2, description="Age group the age model produces (0 <30, 1 30-59, 2 >=60).")
    age_model_age: int = Field(default=65, description="Age recorded for the people it produces.")


@dg.asset(
    group_name=GROUP,
    code_version=GENERATE_CODE_VERSION,
    kinds=KINDS,
    io_manager_key="manifest_io_manager",
    pool=IMAGE_MODELS_POOL,
    automation_condition=DOWNSTREAM,
)
def generated_dataset(
    context: dg.AssetExecutionContext,
    config: GenerationConfig,
    cleaned_dataset: pd.DataFrame,
    profile_split: pd.DataFrame,
    dataset: CompetitionDataset,
    image_store: ImageStoreResource,
    face_detector: FaceDetectorResource,
) -> dg.MaterializeResult:
    """cleaned_dataset plus generated people (masks painted on training profiles' faces) balancing the age groups."""
    cfg = GenerateConfig(
        config.stage, config.seed, config.min_face_prob, config.age_model_path or None, config.age_model_group, config.age_model_age
    )
    train = assign_split(cleaned_dataset, profile_split)
    train = train[train["role"] == TRAIN]
    plan = plan_generation(train.drop_duplicates("profile_id"), cfg)
    normals = train[(train["mask"] == MaskState.NOT_WEAR) & train["readable"]].drop_duplicates("profile_id")
    sources = normals[["profile_id", "image_id", "path", "content_hash"]].rename(columns={"profile_id": "source_profile_id"})
    source = image_store.source(dataset.root)
    age_model = AgeModel(cfg.age_model_path) if cfg.age_model_path else None
    generated, stats = generate(plan, sources, source.open_rgb, image_store.store(), Lazy(face_detector.detector), cfg, age_model)
    context.log.info(
        f"generated {stats.generated_profiles} profiles ({stats.images} images, {stats.reused_images} reused); {stats.skipped_no_face} sources without a face skipped"
    )
    generated = generated.assign(label_source="generated", label_changed=False, correction_reason="")
    for col in LABEL_COLUMNS:  # a generated image's labels are its own originals
        generated[f"raw_{col}"] = generated[col]
    out = pd.concat(
        [cleaned_dataset, generated.astype({c: t for c, t in cleaned_dataset.dtypes.items() if c in generated.columns})], ignore_index=True
    )
    per_class = generated["class_id"].value_counts().sort_index() if len(generated) else pd.Series(dtype=int)
    return _result(out, {
        **dataset_metadata("generated", out, cleaned_dataset, "cleaned"),
        "generated_profiles": dg.MetadataValue.int(stats.generated_profiles),
        "generated_images": dg.MetadataValue.int(stats.images),
        "reused_images": dg.MetadataValue.int(stats.reused_images),
        "skipped_no_face": dg.MetadataValue.int(stats.skipped_no_face),
        "generated_per_class": dg.MetadataValue.json({CLASS_NAMES[int(c)]: int(n) for c, n in per_class.items()}),
        "samples": sheet_metadata(generated, source.open_rgb, lambda r: f"{r['stem']} {r['age']}"),
    })  # fmt: skip
