"""label_issues: the labels most likely to be wrong, for a person to review before they become
corrections in labels/corrections.csv."""

import dagster as dg
import pandas as pd

from assets.catalog import REVIEW
from assets.config import settings_config, to_settings
from assets.metadata import table
from assets.policies import GPU_POOL, stage
from maskops.figures import contact_sheet
from maskops.label_issues import (
    LabelIssuesConfig,
    flagged,
    opinions,
    rank_labels,
    score_against_truth,
    suspect_photos,
)
from maskops.splits import assign_split
from maskops.synth.truth import remaining_errors
from resources import CompetitionDataset, Compute, ImageStoreResource, ReportFiles


class LabelIssuesSettings(settings_config(LabelIssuesConfig)):
    """The out-of-fold models that judge the labels (maskops.label_issues.LabelIssuesConfig)."""


@stage(ins={"crops": dg.AssetIn("relabeled_crops"), "profile_split": dg.AssetIn("profile_split")}, group=REVIEW,
       kinds=("pytorch", "parquet"), code_version="3", pool=GPU_POOL)  # fmt: skip
def label_issues(
    context: dg.AssetExecutionContext, config: LabelIssuesSettings, crops: pd.DataFrame, profile_split: pd.DataFrame,
    dataset: CompetitionDataset, image_store: ImageStoreResource, compute: Compute, reports: ReportFiles,
) -> dg.MaterializeResult:  # fmt: skip
    """Suspected wrong labels (mask per photo, gender and age group per person) of the current labels, from
    out-of-fold probabilities: every person is judged by a model that never saw them. Most suspicious first."""
    from maskops.data import with_crops  # torch loads when the step runs, not with the code location

    settings = to_settings(LabelIssuesConfig, config)
    compute.apply_threads()
    usable = assign_split(with_crops(crops), profile_split).reset_index(drop=True)
    source = image_store.source(dataset.root)
    how = (f"probes on frozen {settings.probe_backbone} features" if settings.method == "probe"
           else f"a {settings.backbone} trained per fold")  # fmt: skip
    context.log.info(f"out-of-fold probabilities for {len(usable)} photos of {usable['profile_id'].nunique()} people: {how}")
    held_out: dict[str, float] = {}

    def on_fold(fold: int, metrics: dict[str, float]) -> None:
        held_out[str(fold)] = round(float(metrics["macro_f1"]), 4)
        context.log.info(f"fold {fold}: held-out macro F1 {metrics['macro_f1']:.3f}")

    predictions = opinions(usable, source.open_rgb, settings, compute.device, on_fold)
    ranked = rank_labels(usable, predictions.probabilities, predictions.age)
    issues = flagged(ranked)
    context.log.info(f"cleanlab flags {len(issues)} labels among {len(usable)} photos")
    wrong = remaining_errors(dataset.root, usable)  # a synthetic dataset knows its injected errors
    truth = score_against_truth(ranked, wrong) if wrong is not None else None
    paths, captions = suspect_photos(issues.head(settings.sheet), usable)
    shown = [source.open_rgb(p) for p in paths]
    return dg.MaterializeResult(value=issues, metadata={
        "suspects": dg.MetadataValue.int(len(issues)),
        "per_field": dg.MetadataValue.json({f: int((issues["field"] == f).sum()) for f in ("mask", "gender", "age_group")}),
        "photos_checked": dg.MetadataValue.int(len(usable)),
        "people_checked": dg.MetadataValue.int(int(usable["profile_id"].nunique())),
        "judged_by": dg.MetadataValue.text(how),
        "held_out_macro_f1": dg.MetadataValue.json(held_out),  # how much the judges know: each fold's model on its own people
        **(_age_metadata(usable, predictions.age) if predictions.age is not None else {}),
        **(_truth_metadata(truth) if truth else {}),
        "top_suspects": table(issues.drop(columns=["score", "images"]).round(3), limit=25),
        "suspect_photos": reports.figure("label_issues", "suspects", contact_sheet(shown, captions)) if shown else dg.MetadataValue.text("no suspects"),
    })  # fmt: skip


def _truth_metadata(truth: dict[str, dict]) -> dict[str, dg.MetadataValue]:
    """How many of the errors still in the labels (synthetic data keeps its answers) the ranking finds."""
    person = truth["person"]
    headline = {"person_errors_left": dg.MetadataValue.int(person["wrong"])}
    if person["recall_top_2k"] is not None:
        headline["person_recall_top_2k"] = dg.MetadataValue.float(round(person["recall_top_2k"], 4))
    return {**headline, "against_ground_truth": dg.MetadataValue.json(truth)}


def _age_metadata(usable: pd.DataFrame, shown) -> dict[str, dg.MetadataValue]:
    """How far the recorded ages are from the ones the photos show (out of fold): the yardstick of the age judgement."""
    off = (usable["age"] - shown).abs().groupby(usable["profile_id"]).first()
    return {"age_median_error_years": dg.MetadataValue.float(round(float(off.median()), 2))}
