"""Metadata a person looks at in the UI: counts, charts, contact sheets, comparisons."""

from collections.abc import Callable

import dagster as dg
import pandas as pd

from maskops.reports import (
    class_counts,
    class_distribution_png,
    class_table_markdown,
    contact_sheet,
    count_comparison_markdown,
    png_markdown,
)


def dataset_metadata(name: str, manifest: pd.DataFrame, upstream: pd.DataFrame | None = None, upstream_name: str = "") -> dict:
    """Images, profiles, class counts (against the upstream manifest when given) and a chart."""
    counts = class_counts(manifest)
    meta = {
        "images": dg.MetadataValue.int(len(manifest)),
        "profiles": dg.MetadataValue.int(int(manifest["profile_id"].nunique())),
        "class_distribution": dg.MetadataValue.md(
            png_markdown(class_distribution_png(counts, f"{name}: {len(manifest)} images"), "images per class")
        ),
    }
    if upstream is None:
        meta["class_counts"] = dg.MetadataValue.md(class_table_markdown(counts))
    else:
        meta["class_counts"] = dg.MetadataValue.md(count_comparison_markdown(class_counts(upstream), counts, upstream_name, name))
    return meta


def sheet_metadata(
    rows: pd.DataFrame, open_image: Callable[[str], object], caption: Callable[[pd.Series], str], path_column: str = "path", limit: int = 16
) -> dg.MetadataValue:
    """A contact sheet of up to `limit` rows (a fixed sample, so re-runs compare)."""
    sample = rows.sample(n=min(limit, len(rows)), random_state=0) if len(rows) else rows
    images = [open_image(p) for p in sample[path_column]]
    captions = [caption(r) for _, r in sample.iterrows()]
    if not images:
        return dg.MetadataValue.md("_no images_")
    return dg.MetadataValue.md(png_markdown(contact_sheet(images, captions), "samples"))


def table_markdown(frame: pd.DataFrame, limit: int = 20) -> str:
    """A small DataFrame as a markdown table (first `limit` rows)."""
    if frame.empty:
        return "_none_"
    head = frame.head(limit).astype(str)
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(v.replace("|", "/") for v in row) + " |" for row in head.itertuples(index=False)]
    if len(frame) > limit:
        lines.append(f"\n... and {len(frame) - limit} more")
    return "\n".join(lines)
