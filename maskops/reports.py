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


def contact_sheet(images: list, captions: list[str], thumb: int = 96, columns: int = 8) -> bytes:
    """Thumbnails in a grid with a caption under each, as PNG bytes."""
    from PIL import Image, ImageDraw

    columns = max(1, min(columns, len(images)))
    rows = max(1, -(-len(images) // columns))
    cell_h = thumb + 14
    sheet = Image.new("RGB", (columns * thumb, rows * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (img, caption) in enumerate(zip(images, captions, strict=True)):
        x, y = (i % columns) * thumb, (i // columns) * cell_h
        tile = img.convert("RGB")
        tile.thumbnail((thumb, thumb))
        sheet.paste(tile, (x + (thumb - tile.width) // 2, y + (thumb - tile.height) // 2))
        draw.text((x + 2, y + thumb + 1), caption[:18], fill=(20, 20, 20))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def count_comparison_markdown(before: pd.Series, after: pd.Series, before_name: str, after_name: str) -> str:
    """Images per class in two manifests side by side, with the difference."""
    lines = [f"| class | mask / gender / age | {before_name} | {after_name} | change |", "|---:|---|---:|---:|---:|"]
    for cid in range(NUM_CLASSES):
        b, a = int(before.get(cid, 0)), int(after.get(cid, 0))
        lines.append(f"| {cid} | {CLASS_NAMES[cid]} | {b} | {a} | {a - b:+d} |")
    return "\n".join(lines)
