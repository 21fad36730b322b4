"""raw_dataset, eval_dataset and mask_only_dataset: the dataset as it arrived, read once and checked."""

import dagster as dg

from assets.catalog import DATASETS, catalog
from assets.metadata import dataset_metadata, sheet, table
from assets.policies import DOWNSTREAM
from assets.sources import DATASET
from maskops.labels import CLASS_NAMES, NUM_CLASSES, MaskState
from maskops.layout import STATE_FOLDERS, fingerprint
from maskops.store import ImageSource
from resources import CompetitionDataset, ReportFiles

CODE_VERSION = "2"  # 2: the scan also yields mask_only_dataset


def _out(description: str) -> dg.AssetOut:
    return dg.AssetOut(io_manager_key="manifest_io_manager", **catalog(DATASETS), code_version=CODE_VERSION,
                       kinds={"pandas", "parquet"}, automation_condition=DOWNSTREAM, description=description)  # fmt: skip


@dg.multi_asset(
    outs={
        "raw_dataset": _out(
            "One row per training image: content hash, profile, stem, labels from the folder names "
            "(checked against train.csv), class id, size, readability, path."
        ),
        "eval_dataset": _out("One row per evaluation image, in the order of eval/info.csv."),
        "mask_only_dataset": _out(
            "One row per photo under mask_only/<wear|incorrect|not_wear>/: photos whose mask state alone is known (real faces "
            "nobody labelled with gender or age); they train every model's mask task. Empty when the folder is absent."
        ),
    },
    deps=[DATASET.key],
    can_subset=False,
)
def competition_dataset(context: dg.AssetExecutionContext, dataset: CompetitionDataset, reports: ReportFiles):
    """Scan the dataset root; every layout problem fails the run with one message naming files and fixes."""
    layout = dataset.scan()
    train = layout.train
    context.log.info(f"read {len(train)} training and {len(layout.eval)} evaluation images from {layout.root} "
                     f"({len(layout.quarantine)} quarantined)")  # fmt: skip
    readable = train[train["readable"]]
    yield dg.MaterializeResult(
        asset_key="raw_dataset",
        value=train,
        data_version=dg.DataVersion(fingerprint(train)),
        metadata={
            **dataset_metadata("raw_dataset", train, reports),
            "dataset_root": dg.MetadataValue.path(str(layout.root)),
            "unreadable_images": dg.MetadataValue.int(int((~train["readable"]).sum())),
            "classes_present": dg.MetadataValue.text(f"{int((train['class_id'].value_counts() > 0).sum())} of {NUM_CLASSES}"),
            "quarantine": table(layout.quarantine, limit=20),
            "samples": sheet(
                reports, "raw_dataset", "samples", readable, ImageSource(layout.root).open_rgb, lambda r: CLASS_NAMES[r["class_id"]]
            ),
        },
    )
    yield dg.MaterializeResult(
        asset_key="eval_dataset",
        value=layout.eval,
        data_version=dg.DataVersion(fingerprint(layout.eval, ("image_id", "content_hash", "order"))),
        metadata={
            "images": dg.MetadataValue.int(len(layout.eval)),
            "unreadable_images": dg.MetadataValue.int(int((~layout.eval["readable"]).sum())),
            "dataset_root": dg.MetadataValue.path(str(layout.root)),
        },
    )
    yield _mask_only_result(layout, reports)


def _mask_only_result(layout, reports: ReportFiles) -> dg.MaterializeResult:
    """mask_only_dataset: the photos under mask_only/ and how many show each mask state."""
    mask_only = layout.mask_only
    return dg.MaterializeResult(
        asset_key="mask_only_dataset",
        value=mask_only,
        data_version=dg.DataVersion(fingerprint(mask_only)),
        metadata={
            "images": dg.MetadataValue.int(len(mask_only)),
            **{f"images_{name}": dg.MetadataValue.int(int((mask_only["mask"] == state).sum())) for state, name in STATE_FOLDERS.items()},
            "unreadable_images": dg.MetadataValue.int(int((~mask_only["readable"]).sum())),
            "samples": sheet(reports, "mask_only_dataset", "samples", mask_only[mask_only["readable"]], ImageSource(layout.root).open_rgb,
                             lambda r: STATE_FOLDERS[MaskState(int(r["mask"]))]),
        },
    )  # fmt: skip
