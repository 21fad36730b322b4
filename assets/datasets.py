"""The dataset variants of the original solution, each a manifest derived from its upstream:
relabeled (human corrections), cleaned (exclusions and rules), generated (balanced with
synthetic masks), and the profile split that every variant shares."""

import dagster as dg
import pandas as pd

from assets.catalog import DATASETS
from assets.config import settings_config, to_settings
from assets.metadata import dataset_metadata, sheet, table
from assets.policies import IMAGE_MODELS_POOL, stage
from maskops.cleaning import CleaningRules, clean, parse_exclusions, removal_summary
from maskops.corrections import apply_corrections, parse_corrections
from maskops.faces import Lazy
from maskops.generate import GENERATE_CODE_VERSION, AgeModel, GenerateConfig, add_generated, generate, generation_sources, plan_generation
from maskops.labels import CLASS_NAMES
from maskops.layout import fingerprint
from maskops.splits import SplitConfig, assign_split, class_share_deviation, make_split
from maskops.store import ImageSource
from resources import CompetitionDataset, FaceDetectorResource, ImageStoreResource, LabelFiles, ReportFiles

GROUP = DATASETS
KINDS = ("pandas", "parquet")


class SplitSettings(settings_config(SplitConfig)):
    """How people are split into folds (maskops.splits.SplitConfig)."""


class CleaningSettings(settings_config(CleaningRules)):
    """Which images the cleaned variant drops (maskops.cleaning.CleaningRules)."""


class GenerationSettings(settings_config(GenerateConfig)):
    """How generated people are made (maskops.generate.GenerateConfig)."""


def _result(manifest: pd.DataFrame, metadata: dict) -> dg.MaterializeResult:
    return dg.MaterializeResult(value=manifest, metadata=metadata, data_version=dg.DataVersion(fingerprint(manifest)))


@stage(group=GROUP, code_version="1", kinds=KINDS)
def relabeled_dataset(
    context: dg.AssetExecutionContext, raw_dataset: pd.DataFrame, label_corrections: pd.DataFrame, labels: LabelFiles,
    dataset: CompetitionDataset, reports: ReportFiles,
) -> dg.MaterializeResult:  # fmt: skip
    """raw_dataset with the human corrections of labels/corrections.csv applied; raw_* columns keep the originals."""
    corrections = parse_corrections(label_corrections, raw_dataset, labels.corrections)
    out = apply_corrections(raw_dataset, corrections).pipe(lambda m: m.assign(source_profile_id=m["profile_id"], generator=""))
    changed = out[out["label_changed"]]
    context.log.info(f"{len(corrections)} corrections from {labels.corrections}: {len(changed)} images relabeled")
    by_field = corrections.groupby("field").size().to_dict()
    names = changed.assign(
        before=changed["raw_class_id"].map(CLASS_NAMES.__getitem__), after=changed["class_id"].map(CLASS_NAMES.__getitem__)
    )
    return _result(out, {
        **dataset_metadata("relabeled_dataset", out, reports, raw_dataset, "raw"),
        "corrections_file": dg.MetadataValue.path(str(labels.corrections)),
        "corrections": dg.MetadataValue.int(len(corrections)),
        "corrections_by_field": dg.MetadataValue.json({f: int(by_field.get(f, 0)) for f in ("gender", "age", "mask")}),
        "relabeled_images": dg.MetadataValue.int(len(changed)),
        "relabeled_profiles": dg.MetadataValue.int(int(changed["profile_id"].nunique())),
        "relabeled_samples": sheet(reports, "relabeled_dataset", "relabeled", changed[changed["readable"]], ImageSource(dataset.root).open_rgb,
                                   lambda r: f"{CLASS_NAMES[int(r['raw_class_id'])]} -> {CLASS_NAMES[int(r['class_id'])]} {r['stem']}"),
        "relabeled_rows": table(names[["image_id", "before", "after", "correction_reason"]]),
    })  # fmt: skip


def _previous_split(context: dg.AssetExecutionContext, config: SplitConfig) -> pd.DataFrame | None:
    """The last materialized split, if it was made with the same folds and seed."""
    event = context.instance.get_latest_materialization_event(context.asset_key)
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    same = all(k in meta and meta[k].value == getattr(config, k) for k in ("n_folds", "seed"))
    if not same or "path" not in meta:
        return None
    try:
        return pd.read_parquet(meta["path"].value)
    except (OSError, ValueError) as exc:
        context.log.warning(f"previous split at {meta['path'].value} could not be read ({exc}); making a fresh split")
        return None


@stage(group=GROUP, code_version="1", kinds=KINDS)
def profile_split(context: dg.AssetExecutionContext, config: SplitSettings, relabeled_dataset: pd.DataFrame) -> dg.MaterializeResult:
    """Every profile in one fold, stratified on the best labels available (relabeled); one fold validates all variants.
    Sticky: people keep their fold as data arrives, so validation stays the same people."""
    settings = to_settings(SplitConfig, config)
    previous = _previous_split(context, settings) if settings.sticky else None
    split, kept = make_split(relabeled_dataset, settings, previous)
    per_fold = split.groupby(["fold", "role"]).size().rename("profiles").reset_index()
    return _result(split, {
        "n_folds": dg.MetadataValue.int(settings.n_folds),
        "seed": dg.MetadataValue.int(settings.seed),
        "profiles_kept_in_their_fold": dg.MetadataValue.int(kept),
        "profiles_placed": dg.MetadataValue.int(len(split) - kept),
        "profiles": dg.MetadataValue.int(len(split)),
        "validation_profiles": dg.MetadataValue.int(int((split["role"] == "validation").sum())),
        "profiles_per_fold": table(per_fold),
        "max_class_share_deviation": dg.MetadataValue.float(round(class_share_deviation(relabeled_dataset, split), 4)),
    })  # fmt: skip


@stage(group=GROUP, code_version="1", kinds=KINDS)
def cleaned_dataset(
    context: dg.AssetExecutionContext, config: CleaningSettings, relabeled_dataset: pd.DataFrame, label_exclusions: pd.DataFrame,
    labels: LabelFiles, dataset: CompetitionDataset, reports: ReportFiles,
) -> dg.MaterializeResult:  # fmt: skip
    """relabeled_dataset minus labels/exclusions.csv and the configured rule-based removals."""
    exclusions = parse_exclusions(label_exclusions, relabeled_dataset, labels.exclusions)
    kept, removed = clean(relabeled_dataset, exclusions, to_settings(CleaningRules, config))
    summary = removal_summary(removed)
    context.log.info(f"removed {len(removed)} of {len(relabeled_dataset)} images: {summary.to_dict('records')}")
    return _result(kept, {
        **dataset_metadata("cleaned_dataset", kept, reports, relabeled_dataset, "relabeled"),
        "exclusions_file": dg.MetadataValue.path(str(labels.exclusions)),
        "removed_images": dg.MetadataValue.int(len(removed)),
        "removed_profiles": dg.MetadataValue.int(int(removed["profile_id"].nunique())),
        "removed_by_reason": table(summary),
        "removed_rows": table(removed[["image_id", "removal"]]),
        "removed_samples": sheet(reports, "cleaned_dataset", "removed", removed[removed["readable"]], ImageSource(dataset.root).open_rgb,
                                 lambda r: r["removal"]),
    })  # fmt: skip


@stage(group=GROUP, code_version=GENERATE_CODE_VERSION, kinds=KINDS, pool=IMAGE_MODELS_POOL)
def generated_dataset(
    context: dg.AssetExecutionContext, config: GenerationSettings, cleaned_dataset: pd.DataFrame, profile_split: pd.DataFrame,
    dataset: CompetitionDataset, image_store: ImageStoreResource, face_detector: FaceDetectorResource, reports: ReportFiles,
) -> dg.MaterializeResult:  # fmt: skip
    """cleaned_dataset plus generated people (masks painted on training profiles' faces) balancing the age groups."""
    settings = to_settings(GenerateConfig, config)
    train = assign_split(cleaned_dataset, profile_split).query("role == 'train'")
    source = image_store.source(dataset.root)
    age_model = AgeModel(settings.age_model_path) if settings.age_model_path else None
    generated, stats = generate(plan_generation(train.drop_duplicates("profile_id"), settings), generation_sources(train), source.open_rgb,
                                image_store.store(), Lazy(face_detector.detector), settings, age_model, face_detector.config())  # fmt: skip
    context.log.info(f"generated {stats.generated_profiles} profiles ({stats.images} images, {stats.reused} reused); "
                     f"{stats.skipped_no_face} sources without a face skipped")  # fmt: skip
    out = add_generated(cleaned_dataset, generated)
    per_class = generated["class_id"].value_counts().sort_index()
    return _result(out, {
        **dataset_metadata("generated_dataset", out, reports, cleaned_dataset, "cleaned"),
        "generated_profiles": dg.MetadataValue.int(stats.generated_profiles),
        "generated_images": dg.MetadataValue.int(stats.images),
        "reused_images": dg.MetadataValue.int(stats.reused),
        "skipped_no_face": dg.MetadataValue.int(stats.skipped_no_face),
        "generated_per_class": dg.MetadataValue.json({CLASS_NAMES[int(c)]: int(n) for c, n in per_class.items()}),
        "samples": sheet(reports, "generated_dataset", "samples", generated, source.open_rgb, lambda r: f"{r['stem']} {r['age']}"),
    })  # fmt: skip
