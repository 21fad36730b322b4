"""Small tables a person looks at: images per class, and per class before and after a stage."""

from __future__ import annotations

import pandas as pd

from maskops.labels import CLASS_NAMES, NUM_CLASSES


def class_counts(manifest: pd.DataFrame) -> pd.Series:
    """Images per class id 0..17 (zeros included), from a manifest's class_id column."""
    return manifest["class_id"].value_counts().reindex(range(NUM_CLASSES), fill_value=0).astype(int)


def class_table(counts: pd.Series) -> pd.DataFrame:
    """class, name (mask / gender / age), images, share (%)."""
    total = max(int(counts.sum()), 1)
    return pd.DataFrame({
        "class": [int(c) for c in counts.index], "name": [CLASS_NAMES[int(c)] for c in counts.index],
        "images": [int(n) for n in counts.values], "share_pct": [round(100 * n / total, 1) for n in counts.values],
    })  # fmt: skip


def class_comparison(before: pd.Series, after: pd.Series, before_name: str, after_name: str) -> pd.DataFrame:
    """Images per class in two manifests side by side, with the change."""
    b = [int(before.get(c, 0)) for c in range(NUM_CLASSES)]
    a = [int(after.get(c, 0)) for c in range(NUM_CLASSES)]
    return pd.DataFrame({"class": range(NUM_CLASSES), "name": CLASS_NAMES, before_name: b, after_name: a,
                         "change": [y - x for x, y in zip(b, a, strict=True)]})  # fmt: skip
