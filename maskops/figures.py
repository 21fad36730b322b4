"""Pictures a person looks at, as PNG bytes: class distributions, confusion matrices, model
comparisons, Grad-CAM grids and contact sheets. Written once to files; never inlined in logs."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd

from maskops.labels import NUM_CLASSES


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def png(fig, tight: bool = True, pad: float = 1.08) -> bytes:
    """A matplotlib figure as PNG bytes; the figure is closed."""
    plt = _pyplot()
    if tight:
        fig.tight_layout(pad=pad)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def class_distribution_png(counts: pd.Series, title: str) -> bytes:
    """A bar chart of images per class, coloured by mask state."""
    plt = _pyplot()
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
    return png(fig)


def _draw_confusion(ax, matrix: np.ndarray, title: str, fontsize: float, ticks: range) -> None:
    ax.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=fontsize, color="white" if v > matrix.max() / 2 else "black")
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.tick_params(labelsize=6)
    ax.set_xlabel("predicted class", fontsize=8)
    ax.set_ylabel("true class", fontsize=8)
    ax.set_title(title, fontsize=9)


def confusion_png(matrix: np.ndarray, title: str) -> bytes:
    fig, ax = _pyplot().subplots(figsize=(6, 5.2), dpi=80)
    _draw_confusion(ax, matrix, title, 6, range(NUM_CLASSES))
    return png(fig)


def confusion_grid_png(matrices: dict[str, np.ndarray], columns: int = 3) -> bytes:
    """Confusion matrices side by side, one panel per model, each on its own colour scale."""
    rows = -(-len(matrices) // columns)
    fig, axes = _pyplot().subplots(rows, columns, figsize=(4.2 * columns, 4.2 * rows), dpi=70, squeeze=False)
    for ax in axes.flat[len(matrices) :]:
        ax.axis("off")
    for ax, (title, matrix) in zip(axes.flat, matrices.items(), strict=False):
        accuracy = np.trace(matrix) / max(int(matrix.sum()), 1)
        _draw_confusion(ax, matrix, f"{title} (accuracy {accuracy:.3f})", 4.5, range(0, NUM_CLASSES, 3))
    return png(fig)


def comparison_png(names: list[str], scores: list[float], ylabel: str = "validation macro F1") -> bytes:
    """One bar per model, the last (the ensemble) highlighted."""
    fig, ax = _pyplot().subplots(figsize=(6, 2.8), dpi=80)
    ax.bar(names, scores, color=["#4C72B0"] * (len(names) - 1) + ["#C44E52"])
    for i, v in enumerate(scores):
        ax.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=8)
    return png(fig)


def reliability_png(tables: dict[str, pd.DataFrame], title: str = "validation: reliability (top label)") -> bytes:
    """One line per model: accuracy against mean confidence in each non-empty bin (maskops.calibration.reliability);
    the diagonal is a calibrated model."""
    fig, ax = _pyplot().subplots(figsize=(4.2, 3.6), dpi=80)
    ax.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1)
    for name, table in tables.items():
        used = table[table["count"] > 0]
        ax.plot(used["confidence"], used["accuracy"], marker="o", markersize=3, linewidth=1.2, label=name)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=title)
    ax.title.set_fontsize(9)
    ax.legend(fontsize=6, loc="upper left")
    ax.tick_params(labelsize=7)
    return png(fig)


def gradcam_grid_png(images, heat: np.ndarray, captions: list[str], columns: int = 8) -> bytes:
    """Each uint8 (3, H, W) image with its heat map blended over it."""
    n = len(images)
    rows = max(1, math.ceil(n / columns))
    fig, axes = _pyplot().subplots(rows, columns, figsize=(columns * 1.3, rows * 1.45), dpi=80, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        ax = axes.flat[i]
        ax.imshow(images[i].permute(1, 2, 0).numpy())
        ax.imshow(heat[i], cmap="jet", alpha=0.45)
        ax.set_title(captions[i], fontsize=6)
    return png(fig, pad=0.2)


def contact_sheet(images: list, captions: list[str], thumb: int = 96, columns: int = 8) -> bytes:
    """Thumbnails in a grid with a caption under each."""
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
