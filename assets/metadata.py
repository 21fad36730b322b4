"""Metadata a person looks at in the UI: counts, typed tables, and pictures linked as files."""

from collections.abc import Callable

import dagster as dg
import pandas as pd

from maskops.figures import class_distribution_png, contact_sheet
from maskops.reports import class_comparison, class_counts, class_table
from resources import ReportFiles

_TYPES = {"i": "int", "u": "int", "f": "float", "b": "bool"}


def table(frame: pd.DataFrame, limit: int = 50) -> dg.MetadataValue:
    """A DataFrame as a typed table (its first `limit` rows)."""
    head = frame.head(limit)
    schema = dg.TableSchema(columns=[dg.TableColumn(str(c), _TYPES.get(t.kind, "string")) for c, t in head.dtypes.items()])
    records = [
        dg.TableRecord({str(k): (v.item() if hasattr(v, "item") else v) if not pd.isna(v) else None for k, v in row.items()})
        for row in head.astype(object).to_dict("records")
    ]
    return dg.MetadataValue.table(records, schema)


def dataset_metadata(
    name: str, manifest: pd.DataFrame, reports: ReportFiles, upstream: pd.DataFrame | None = None, upstream_name: str = ""
) -> dict:
    """Images, profiles, images per class (against the upstream manifest when given) and a chart."""
    counts = class_counts(manifest)
    chart = class_distribution_png(counts, f"{name}: {len(manifest)} images")
    counted = class_table(counts) if upstream is None else class_comparison(class_counts(upstream), counts, upstream_name, name)
    return {
        "images": dg.MetadataValue.int(len(manifest)),
        "profiles": dg.MetadataValue.int(int(manifest["profile_id"].nunique())),
        "class_distribution": reports.figure(name, "class_distribution", chart),
        "class_counts": table(counted, limit=18),
    }


def sheet(
    reports: ReportFiles,
    asset: str,
    name: str,
    rows: pd.DataFrame,
    open_image: Callable[[str], object],
    caption: Callable[[pd.Series], str],
    path_column: str = "path",
    limit: int = 16,
) -> dg.MetadataValue:
    """A contact sheet of up to `limit` rows (a fixed sample, so re-runs compare), written as a file."""
    sample = rows.sample(n=min(limit, len(rows)), random_state=0) if len(rows) else rows
    if sample.empty:
        return dg.MetadataValue.text("no images")
    images = [open_image(p) for p in sample[path_column]]
    return reports.figure(asset, name, contact_sheet(images, [caption(r) for _, r in sample.iterrows()]))


def mlflow_tags(context: dg.AssetExecutionContext, code_version: str) -> dict[str, str]:
    """Tags that tie an MLflow run to the Dagster run and asset that made it."""
    return {
        "dagster.run_id": context.run.run_id,
        "dagster.asset_key": context.asset_key.to_user_string(),
        "maskops.code_version": code_version,
    }
