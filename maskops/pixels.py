"""How every photo becomes RGB pixels, in training and in serving alike (the crop stage, the generated variant and the
served model all open photos through `upright_rgb`): upright as its EXIF orientation says — a phone stores the pixels
as the sensor read them and a tag saying how to turn them — and high bit depths scaled to 8 bits, not clipped."""

from __future__ import annotations

import numpy as np
from PIL import ExifTags, Image, features

# The file names read as photos (dataset layout, `maskops predict` folders): JPEG under each of its names (.jfif, .jpe
# as some browsers and Windows save them), PNG, BMP, WebP, GIF, TIFF, and AVIF where Pillow was built with it (its
# wheels are, since 11.3).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"} | ({".avif"} if features.check("avif") else set())
)

TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
QUARTER_TURNS = {5, 6, 7, 8}  # orientations whose upright image swaps width and height
WIDE_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}  # 16-bit and 32-bit grey: convert("RGB") clips them to 255


def orientation(image: Image.Image) -> int:
    """The EXIF orientation (1: upright; 1 when the tag is missing or unreadable)."""
    try:
        value = int(image.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # a damaged EXIF block: the pixels are still there
        return 1
    return value if value in TRANSPOSE else 1


def upright_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) as the photo is shown, from the header alone."""
    width, height = image.size
    return (height, width) if orientation(image) in QUARTER_TURNS else (width, height)


def upright_rgb(image: Image.Image) -> Image.Image:
    """`image` as 8-bit RGB, turned upright by its EXIF orientation."""
    method = TRANSPOSE.get(orientation(image))  # read before converting: the tag lives on the opened file
    rgb = (eight_bit(image) if image.mode in WIDE_MODES else image).convert("RGB")
    return rgb.transpose(method) if method is not None else rgb


def eight_bit(image: Image.Image) -> Image.Image:
    """A 16-bit or 32-bit grey image as 8-bit grey: 16-bit data divided by 257 (65535 -> 255); 32-bit integers by
    their own range when they exceed 16 bits; floats in 0..1 times 255, other floats clipped to 0..255."""
    values = np.asarray(image).astype(np.float64)
    top = float(values.max()) if values.size else 0.0
    if image.mode.startswith("I;16"):
        values = values / 257.0
    elif image.mode == "F":
        values = values * 255.0 if top <= 1.0 else values
    elif top > 255:
        values = values * (255.0 / (65535.0 if top <= 65535 else top))
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
