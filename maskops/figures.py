"""Pictures a person looks at, as PNG bytes: class distributions, confusion matrices, model
comparisons, Grad-CAM grids and contact sheets. Written once to files; never inlined in logs."""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pandas as pd

from maskops.labels import CLASS_NAMES, NUM_CLASSES

# Every figure is read at its own size (the UI links the PNG file): 100 dpi and no text under 7 pt (about 10 px).
DPI = 100
MIN_FONT_PT = 7.0
WRONG = "\u2717"  # ✗ ends the caption of a wrong prediction


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
    fig, ax = plt.subplots(figsize=(7, 3), dpi=DPI)
    ax.bar(range(NUM_CLASSES), counts.values, color=colors)
    ax.set_xticks(range(NUM_CLASSES))
    ax.set_xticklabels([str(i) for i in range(NUM_CLASSES)], fontsize=8)
    ax.set_xlabel("class id (blue: mask worn, orange: incorrect, green: no mask)", fontsize=8)
    ax.set_ylabel("images", fontsize=8)
    ax.set_title(title, fontsize=9)
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    # fixed margins (the labels never change): tight_layout's extra draw was a third of the chart's time, and every
    # dataset and crop asset draws one per materialization
    fig.subplots_adjust(left=0.115, right=0.99, top=0.9, bottom=0.17)
    return png(fig, tight=False)


def _draw_confusion(ax, matrix: np.ndarray, title: str, tick_labels: list[str]) -> None:
    """Counts where non-zero, white on the dark half of the panel's own colour scale."""
    ax.imshow(matrix, cmap="Blues")
    count_size = MIN_FONT_PT if matrix.max() >= 1000 else MIN_FONT_PT + 1
    for (i, j), v in np.ndenumerate(matrix):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=count_size, color="white" if v > matrix.max() / 2 else "black")
    for edge in (5.5, 11.5):  # between the mask states: worn | incorrect | none
        ax.axhline(edge, color="#888888", linewidth=0.6)
        ax.axvline(edge, color="#888888", linewidth=0.6)
    ticks = range(len(tick_labels))
    ax.set_xticks(ticks, tick_labels, rotation=90 if max(map(len, tick_labels)) > 2 else 0)
    ax.set_yticks(ticks, tick_labels)
    ax.tick_params(labelsize=MIN_FONT_PT + 1 if max(map(len, tick_labels)) <= 2 else MIN_FONT_PT, length=2)
    ax.set_xlabel("predicted class", fontsize=9)
    ax.set_ylabel("true class", fontsize=9)
    ax.set_title(title, fontsize=10)


def confusion_figure(matrix: np.ndarray, title: str):
    """One confusion matrix with the class names on both axes."""
    fig, ax = _pyplot().subplots(figsize=(8, 7.6), dpi=DPI)
    _draw_confusion(ax, matrix, title, list(CLASS_NAMES))
    return fig


def confusion_png(matrix: np.ndarray, title: str) -> bytes:
    return png(confusion_figure(matrix, title))


def confusion_grid_figure(matrices: dict[str, np.ndarray], columns: int = 2):
    """One panel per model, each on its own colour scale, class ids on the axes and a key of the ids in the last panel."""
    panels = len(matrices) + 1
    rows = -(-panels // columns)
    fig, axes = _pyplot().subplots(rows, columns, figsize=(5.6 * columns, 5.4 * rows), dpi=DPI, squeeze=False)
    for ax in axes.flat[len(matrices) :]:
        ax.axis("off")
    ids = [str(c) for c in range(NUM_CLASSES)]
    for ax, (title, matrix) in zip(axes.flat, matrices.items(), strict=False):
        accuracy = np.trace(matrix) / max(int(matrix.sum()), 1)
        _draw_confusion(ax, matrix, f"{title} (accuracy {accuracy:.2f})", ids)
    key = "\n".join(f"{c:>2}  {name}" for c, name in enumerate(CLASS_NAMES))
    axes.flat[len(matrices)].text(0.05, 0.98, f"class ids\n\n{key}", va="top", ha="left", family="monospace", fontsize=11)
    return fig


def confusion_grid_png(matrices: dict[str, np.ndarray], columns: int = 2) -> bytes:
    """Confusion matrices of several models, two to a row (maskops.ensemble's members and the ensemble)."""
    return png(confusion_grid_figure(matrices, columns))


def comparison_png(names: list[str], scores: list[float], ylabel: str = "validation macro F1") -> bytes:
    """One bar per model, the last (the ensemble) highlighted."""
    fig, ax = _pyplot().subplots(figsize=(6, 2.8), dpi=DPI)
    ax.bar(names, scores, color=["#4C72B0"] * (len(names) - 1) + ["#C44E52"])
    for i, v in enumerate(scores):
        ax.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=8)
    return png(fig)


def reliability_png(tables: dict[str, pd.DataFrame], title: str = "validation: reliability (top label)") -> bytes:
    """One line per model: accuracy against mean confidence in each non-empty bin (maskops.calibration.reliability);
    the diagonal is a calibrated model."""
    fig, ax = _pyplot().subplots(figsize=(4.2, 3.6), dpi=DPI)
    ax.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1)
    for name, table in tables.items():
        used = table[table["count"] > 0]
        ax.plot(used["confidence"], used["accuracy"], marker="o", markersize=3, linewidth=1.2, label=name)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=title)
    ax.title.set_fontsize(9)
    ax.legend(fontsize=MIN_FONT_PT, loc="upper left")
    ax.tick_params(labelsize=MIN_FONT_PT + 1)
    return png(fig)


def prediction_captions(y_true, predicted) -> list[str]:
    """A caption per image: the true class's name over the predicted one's, marked when they differ."""
    return [
        f"true {CLASS_NAMES[t]}\npred {CLASS_NAMES[p]}" + ("" if t == p else f" {WRONG}")
        for t, p in zip(np.asarray(y_true, dtype=int), np.asarray(predicted, dtype=int), strict=True)
    ]


def gradcam_grid_figure(images, heat: np.ndarray, captions: list[str], columns: int = 4):
    """Each uint8 (3, H, W) image with its heat map blended over it; a caption marked wrong (prediction_captions) is red."""
    n = len(images)
    columns = max(1, min(columns, n))
    rows = max(1, math.ceil(n / columns))
    fig, axes = _pyplot().subplots(rows, columns, figsize=(columns * 2.7, rows * 3.1), dpi=DPI, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        ax = axes.flat[i]
        ax.imshow(images[i].permute(1, 2, 0).numpy())
        ax.imshow(heat[i], cmap="jet", alpha=0.45)
        ax.set_title(captions[i], fontsize=8.5, loc="left", color="#B00020" if captions[i].endswith(WRONG) else "black")
    return fig


def gradcam_grid_png(images, heat: np.ndarray, captions: list[str], columns: int = 4) -> bytes:
    return png(gradcam_grid_figure(images, heat, captions, columns), pad=0.4)


def caption_font(thumb: int):
    """Pillow's scalable default font at an eighth of the thumbnail, never under 12 px."""
    from PIL import ImageFont

    return ImageFont.load_default(size=max(12, thumb // 8))


def wrap_caption(text: str, font, width: int, lines: int = 2) -> list[str]:
    """`text` broken after spaces and slashes into at most `lines` lines of `width` pixels; only the last may be cut (…)."""
    out, line = [], ""
    for word in re.findall(r"[^ /]+[ /]?|[ /]", text):
        if line and len(out) < lines - 1 and font.getlength((line + word).rstrip()) > width:
            out.append(line.rstrip())
            line = ""
        line += word
    out.append(line.rstrip())
    return [_cut(line, font, width) for line in out]


def _cut(line: str, font, width: int) -> str:
    while font.getlength(line) > width and len(line) > 1:
        line = line[:-2] + "\u2026"
    return line


def contact_sheet(images: list, captions: list[str], thumb: int = 128, columns: int = 8) -> bytes:
    """Thumbnails in a grid with a caption of up to two lines under each."""
    from PIL import Image, ImageDraw

    font = caption_font(thumb)
    line_h = font.getbbox("Ag")[3] + 3
    columns = max(1, min(columns, len(images)))
    rows = max(1, -(-len(images) // columns))
    cell_w, cell_h = thumb + 12, thumb + 2 * line_h + 10
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (img, caption) in enumerate(zip(images, captions, strict=True)):
        x, y = (i % columns) * cell_w + 6, (i // columns) * cell_h + 4
        tile = img.convert("RGB")
        tile.thumbnail((thumb, thumb))
        sheet.paste(tile, (x + (thumb - tile.width) // 2, y + (thumb - tile.height) // 2))
        for k, line in enumerate(wrap_caption(caption, font, thumb)):
            draw.text((x, y + thumb + 2 + k * line_h), line, fill=(20, 20, 20), font=font)
    buf = io.BytesIO()
    # zlib level 1: photos barely compress further (optimize=True made files ~10% smaller at ~5x the time: 1.1 of the
    # 6 s an incremental data run took, bench/incremental.py)
    sheet.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
