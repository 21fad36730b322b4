"""label_issues: the labels most likely to be wrong, for a person to review before they become
corrections in labels/corrections.csv."""

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.policies import DOWNSTREAM, IMAGE_MODELS_POOL
from maskops.data import decode_all
from maskops.label_issues import ISSUE_COLUMNS, find_label_issues, out_of_fold_probabilities
from maskops.reports import contact_sheet, png_markdown
from maskops.splits import assign_split
from maskops.train import config_from
from resources import CompetitionDataset, Compute, ImageStoreResource


class LabelIssuesConfig(dg.Config):
    backbone: str = Field(default="resnet10t", description="timm model of the out-of-fold models (one per fold).")
    image_size: int = Field(default=64, description="Input side of the out-of-fold models.")
    epochs: int = Field(default=4, description="Epochs per fold.")
    seed: int = 0
    sheet: int = Field(default=16, description="Suspects shown in the metadata's contact sheet.")


def _markdown(issues: pd.DataFrame, limit: int = 25) -> str:
    if issues.empty:
        return "No suspected label errors."
    head = "| person | photo | field | given | suggested | p(given) | p(suggested) |\n|---|---|---|---|---|---:|---:|\n"
    rows = [
        f"| {r.profile_id} | {r.stem or 'all'} | {r.field} | {r.given} | {r.suggested} | {r.p_given:.2f} | {r.p_suggested:.2f} |"
        for r in issues.head(limit).itertuples()
    ]
    more = f"\n\n... and {len(issues) - limit} more" if len(issues) > limit else ""
    return head + "\n".join(rows) + more


@dg.asset(
    ins={"crops": dg.AssetIn(["cropped", "relabeled"]), "profile_split": dg.AssetIn("profile_split")},
    group_name="labels",
    kinds={"pytorch", "parquet"},
    code_version="1",
    io_manager_key="manifest_io_manager",
    pool=IMAGE_MODELS_POOL,
    automation_condition=DOWNSTREAM,
)
def label_issues(
    context: dg.AssetExecutionContext,
    config: LabelIssuesConfig,
    crops: pd.DataFrame,
    profile_split: pd.DataFrame,
    dataset: CompetitionDataset,
    image_store: ImageStoreResource,
    compute: Compute,
) -> dg.MaterializeResult:
    """Suspected wrong labels (mask per photo, gender and age group per person) of the current labels, from
    out-of-fold probabilities: every person is judged by a model that never saw them. Most suspicious first."""
    usable = assign_split(crops[crops["crop_path"].notna()], profile_split).reset_index(drop=True)
    source = image_store.source(dataset.root)
    cfg = config_from("demo", backbone=config.backbone, image_size=config.image_size, epochs=config.epochs, seed=config.seed,
                      patience=config.epochs, device=compute.device)  # fmt: skip
    if compute.threads:
        import torch

        torch.set_num_threads(compute.threads)
    folds = usable["fold"].to_numpy()
    context.log.info(
        f"out-of-fold probabilities for {len(usable)} photos of {usable['profile_id'].nunique()} people, {len(set(folds))} folds"
    )
    images = decode_all(list(usable["crop_path"]), source.open_rgb, cfg.image_size)

    def on_fold(fold: int, metrics: dict[str, float]) -> None:
        context.log.info(f"fold {fold}: held-out macro F1 {metrics['macro_f1']:.3f}")

    probabilities = out_of_fold_probabilities(images, usable["class_id"].to_numpy(), folds, cfg, on_fold)
    issues = find_label_issues(usable, probabilities)
    context.log.info(f"{len(issues)} suspected label errors among {len(usable)} photos")
    first = usable.drop_duplicates("profile_id").set_index("profile_id")["crop_path"]
    by_photo = usable.set_index(["profile_id", "stem"])["crop_path"]
    shown = issues.head(config.sheet)
    pictures = [source.open_rgb(by_photo[(r.profile_id, r.stem)] if r.stem else first[r.profile_id]) for r in shown.itertuples()]
    captions = [f"{r.field}: {r.given}->{r.suggested}" for r in shown.itertuples()]
    sheet = png_markdown(contact_sheet(pictures, captions), "suspects") if pictures else "_no suspects_"
    return dg.MaterializeResult(
        value=issues[list(ISSUE_COLUMNS)],
        metadata={
            "suspects": dg.MetadataValue.int(len(issues)),
            "per_field": dg.MetadataValue.json({f: int((issues["field"] == f).sum()) for f in ("mask", "gender", "age_group")}),
            "photos_checked": dg.MetadataValue.int(len(usable)),
            "people_checked": dg.MetadataValue.int(int(usable["profile_id"].nunique())),
            "top_suspects": dg.MetadataValue.md(_markdown(issues)),
            "suspect_photos": dg.MetadataValue.md(sheet),
        },
    )
