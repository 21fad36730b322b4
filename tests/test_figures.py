"""Figures a person can read at their own size: class names in captions, fonts and cells above a floor.

Every picture drawn here is also saved under test-artifacts/screenshots/ (git-ignored) for a person to look at."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.text import Text
from PIL import Image, ImageFont

from maskops.figures import (
    DPI,
    MIN_FONT_PT,
    WRONG,
    caption_font,
    confusion_grid_figure,
    contact_sheet,
    gradcam_grid_figure,
    png,
    prediction_captions,
    wrap_caption,
)
from maskops.labels import CLASS_NAMES, NUM_CLASSES

SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"
MODELS = ["raw_model", "relabeled_model", "cleaned_model", "generated_model", "ensemble"]


def _save(name: str, data: bytes) -> Image.Image:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / name).write_bytes(data)
    return Image.open(io.BytesIO(data))


def _texts(fig) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]


def _matrices(seed: int = 0) -> dict[str, np.ndarray]:
    """Confusion matrices like a validation set of ~600 photos: a strong diagonal, scattered mistakes, many zeros."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in MODELS:
        matrix = np.diag(rng.integers(5, 400, NUM_CLASSES))
        mistakes = rng.random((NUM_CLASSES, NUM_CLASSES)) < 0.2
        out[name] = matrix + np.where(mistakes, rng.integers(1, 40, matrix.shape), 0) * (1 - np.eye(NUM_CLASSES, dtype=int))
    return out


def test_grad_cam_captions_name_the_true_and_predicted_classes():
    captions = prediction_captions(np.array([0, 11]), np.array([0, 3]))
    assert captions[0] == "true wear/male/<30\npred wear/male/<30"
    assert captions[1] == f"true incorrect/female/>=60\npred wear/female/<30 {WRONG}"
    assert all(name in CLASS_NAMES for c in captions for name in (c.split("\n")[0][5:], c.split("\n")[1][5:].removesuffix(f" {WRONG}")))


def test_the_confusion_grid_shows_every_count_in_a_cell_big_enough_to_read():
    matrices = _matrices()
    fig = confusion_grid_figure(matrices)
    fig.tight_layout()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert fig.dpi >= DPI and min(t.get_fontsize() for t in _texts(fig)) >= MIN_FONT_PT
    for ax, matrix in zip(fig.axes, matrices.values(), strict=False):
        cell = ax.get_window_extent().width / NUM_CLASSES
        counts = [t for t in ax.texts if t.get_text().strip()]
        assert cell >= 20, f"cells of {cell:.0f} px"
        assert len(counts) == np.count_nonzero(matrix)  # counts only where non-zero
        assert max(t.get_window_extent(renderer).width for t in counts) < cell  # the widest count fits in its cell
    key = fig.axes[len(matrices)].texts[0].get_text()
    assert all(name in key for name in CLASS_NAMES)  # the ids on the axes are explained on the page
    image = _save("figures-confusion-grid.png", png(fig))
    assert image.width >= 1000 and image.height >= 1500


def test_the_grad_cam_grid_has_two_line_captions_that_do_not_overlap():
    n = 6
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 255, (n, 3, 64, 64), dtype=np.uint8))
    heat = np.random.default_rng(2).random((n, 64, 64))
    y_true, predicted = np.array([5, 6, 11, 17, 8, 0]), np.array([5, 7, 11, 2, 8, 14])
    fig = gradcam_grid_figure(images, heat, prediction_captions(y_true, predicted))
    fig.tight_layout(pad=0.4)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert fig.dpi >= DPI and min(t.get_fontsize() for t in _texts(fig)) >= MIN_FONT_PT
    titles = [ax._left_title for ax in fig.axes[:n]]
    boxes = [t.get_window_extent(renderer) for t in titles]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    assert [t.get_color() != "black" for t in titles] == list(y_true != predicted)  # mistakes stand out
    image = _save("figures-gradcam.png", png(fig, pad=0.4))
    assert min(image.size) >= 500


def test_contact_sheet_captions_are_whole_and_at_least_twelve_pixels():
    font = caption_font(96)
    assert isinstance(font, ImageFont.FreeTypeFont) and font.size >= 12 and caption_font(256).size >= 32
    lines = wrap_caption("incorrect/female/30-59", caption_font(128), 128)
    assert lines == ["incorrect/female/", "30-59"] or lines == ["incorrect/female/30-59"]
    assert wrap_caption("a very long caption that cannot possibly fit in two lines", font, 96)[-1].endswith("\u2026")
    faces = [Image.new("RGB", (200, 250), (200, 150 + 5 * i, 120)) for i in range(10)]
    data = contact_sheet(faces, [CLASS_NAMES[i] for i in (10, 8, 17, 11, 6, 3, 13, 1, 0, 16)], thumb=128)
    sheet = np.asarray(_save("figures-contact-sheet.png", data).convert("L"))
    columns, rows = 8, 2
    cell_w, cell_h = sheet.shape[1] // columns, sheet.shape[0] // rows
    caption = sheet[4 + 128 : cell_h - 1, :cell_w] < 100  # the first cell's caption strip: dark ink on white
    ink_rows = np.flatnonzero(caption.any(axis=1))
    assert ink_rows.size and ink_rows[-1] - ink_rows[0] >= 24  # two lines of glyphs about a dozen pixels tall
    assert caption.any(axis=0).sum() >= 60  # and wide enough to be words, not a smudge


@pytest.mark.parametrize("thumb", [64, 96, 160])
def test_every_wrapped_line_fits_its_thumbnail(thumb: int):
    font = caption_font(thumb)
    for name in CLASS_NAMES:
        lines = wrap_caption(name, font, thumb)
        assert len(lines) <= 2 and all(font.getlength(line) <= thumb for line in lines)
        if not lines[-1].endswith("\u2026"):
            assert "".join(lines) == name  # nothing lost
