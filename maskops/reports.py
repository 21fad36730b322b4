"""Small pictures and tables a person looks at: class distributions, count tables."""

from __future__ import annotations

import base64
import io

import pandas as pd

from maskops.labels import CLASS_NAMES, NUM_CLASSES


def class_counts(manifest: pd.DataFrame) -> pd.Series:
    """Images per class id 0..17 (zeros included), from a manifest's class_id column."""
    return manifest["class_id"].value_counts().reindex(range(NUM_CLASSES), fill_value=0).astype(int)


def class_table_markdown(counts: pd.Series) -> str:
    """A markdown table: class id, name, images, share."""
    total = max(int(counts.sum()), 1)
    lines = ["| class | mask / gender / age | images | share |", "|---:|---|---:|---:|"]
    for cid, n in counts.items():
        lines.append(f"| {cid} | {CLASS_NAMES[int(cid)]} | {int(n)} | {100 * n / total:.1f}% |")
    return "\n".join(lines)


def class_distribution_png(counts: pd.Series, title: str) -> bytes:
    """A bar chart of images per class, coloured by mask state, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    colors = ["#4C72B0"] * 6 + ["#DD8452"] * 6 + ["#55A868"] * 6
    fig, ax = plt.subplots(figsize=(7, 3), dpi=80)
    ax.bar(range(NUM_CLASSES), counts.values, color=colors)
    ax.set_xticks(range(NUM_CLASSES))
    ax.set_xticklabels([str(i) for i in range(NUM_CLASSES)], fontsize=8)
    ax.set_xlabel("class id (blue: mask worn, orange: incorrect, green: no mask)", fontsize=8)
    ax.set_ylabel("images", fontsize=8)
    ax.set_title(title, fontsize=9)
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def png_markdown(png: bytes, alt: str) -> str:
    """Inline a PNG in markdown, so it shows in the Dagster UI without a file server."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
