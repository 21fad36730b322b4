"""raw_dataset and eval_dataset: the dataset as it arrived, read once and checked."""

import dagster as dg
import pandas as pd

from assets.metadata import sheet_metadata
from maskops.labels import CLASS_NAMES, NUM_CLASSES
from maskops.layout import Layout, fingerprint, source_fingerprint
from maskops.reports import class_counts, class_distribution_png, class_table_markdown, png_markdown
from maskops.store import ImageSource
from resources.dataset import CompetitionDataset

CODE_VERSION = "1"
# Metadata key of raw_dataset: the dataset files it was read from (the new-data sensor compares it).
SOURCE_FINGERPRINT = "source_fingerprint"


def _quarantine_markdown(quarantine: pd.DataFrame, limit: int = 20) -> str:
    if quarantine.empty:
        return "No file was quarantined."
    rows = [f"| `{r.path}` | {r.reason} | {r.fix} |" for r in quarantine.head(limit).itertuples()]
    more = f"\n\n... and {len(quarantine) - limit} more" if len(quarantine) > limit else ""
    return "| file | problem | fix |\n|---|---|---|\n" + "\n".join(rows) + more


def raw_metadata(layout: Layout) -> dict[str, object]:
    """What a person looks at for the training manifest."""
    train = layout.train
    counts = class_counts(train)
    present = int((counts > 0).sum())
    return {
        "dataset_root": dg.MetadataValue.path(str(layout.root)),
        "images": dg.MetadataValue.int(len(train)),
        "profiles": dg.MetadataValue.int(int(train["profile_id"].nunique())),
        "unreadable_images": dg.MetadataValue.int(int((~train["readable"]).sum())),
        "classes_present": dg.MetadataValue.text(f"{present} of {NUM_CLASSES}"),
        "class_distribution": dg.MetadataValue.md(
            png_markdown(class_distribution_png(counts, f"raw_dataset: {len(train)} images"), "images per class")
        ),
        "class_counts": dg.MetadataValue.md(class_table_markdown(counts)),
        "quarantine": dg.MetadataValue.md(_quarantine_markdown(layout.quarantine)),
        "samples": sheet_metadata(train[train["readable"]], ImageSource(layout.root).open_rgb, lambda r: CLASS_NAMES[r["class_id"]]),
    }


@dg.multi_asset(
    outs={
        "raw_dataset": dg.AssetOut(
            io_manager_key="manifest_io_manager",
            group_name="datasets",
            code_version=CODE_VERSION,
            kinds={"pandas", "parquet"},
            description="One row per training image: content hash, profile, stem, labels from the folder "
            "names (checked against train.csv), class id, size, readability, path.",
        ),
        "eval_dataset": dg.AssetOut(
            io_manager_key="manifest_io_manager",
            group_name="datasets",
            code_version=CODE_VERSION,
            kinds={"pandas", "parquet"},
            description="One row per evaluation image, in the order of eval/info.csv.",
        ),
    },
    can_subset=False,
)
def competition_dataset(context: dg.AssetExecutionContext, dataset: CompetitionDataset):
    """Scan the dataset root; every layout problem fails the run with one message naming files and fixes."""
    source = source_fingerprint(dataset.root)  # before the scan: files changed during it trigger the next run
    layout = dataset.scan()
    context.log.info(
        f"read {len(layout.train)} training and {len(layout.eval)} evaluation images from {layout.root}"
        f" ({len(layout.quarantine)} quarantined)"
    )
    yield dg.MaterializeResult(
        asset_key="raw_dataset",
        value=layout.train,
        metadata={**raw_metadata(layout), SOURCE_FINGERPRINT: dg.MetadataValue.text(source)},
        data_version=dg.DataVersion(fingerprint(layout.train)),
    )
    yield dg.MaterializeResult(
        asset_key="eval_dataset",
        value=layout.eval,
        metadata={
            "images": dg.MetadataValue.int(len(layout.eval)),
            "unreadable_images": dg.MetadataValue.int(int((~layout.eval["readable"]).sum())),
            "dataset_root": dg.MetadataValue.path(str(layout.root)),
        },
        data_version=dg.DataVersion(fingerprint(layout.eval, ("image_id", "content_hash", "order"))),
    )
