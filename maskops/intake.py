"""Photos from outside (a caller of the scoring server, a `predict` argument): read and decoded only within limits.

Regular files only (a FIFO or a device would block or never end), bytes counted before reading, and the pixel count
read from the image header before any pixel is decoded — a small PNG can declare 13000 x 13000 pixels.
"""

from __future__ import annotations

import io
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from maskops.options import option
from maskops.pixels import upright_rgb


class IntakeError(ValueError):
    """One photo cannot be taken; the message is the reason given back for its row."""


@dataclass(frozen=True)
class IntakeLimits:
    max_bytes: int = option(20 * 2**20, "Largest encoded photo accepted, in bytes.")
    max_pixels: int = option(40_000_000, "Largest photo accepted, in pixels (width x height, read from the header before decoding).")
    max_side: int = option(2048, "Longer side a photo is shrunk to as it is decoded (a face crop needs far less; memory stays bounded).")


DEFAULT_LIMITS = IntakeLimits()


def read_regular_file(path: str | os.PathLike, limits: IntakeLimits = DEFAULT_LIMITS, roots: Sequence[Path] | None = None) -> bytes:
    """The bytes of a regular file no larger than the limit; with `roots`, only a file whose real path lies under one of them.

    Outside the roots the file is never looked at, so the reason does not tell whether it exists."""
    if roots is not None:
        real = Path(os.path.realpath(path))
        if not any(real.is_relative_to(root) for root in roots):
            raise IntakeError("path refused: not under an allowed root")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # non-blocking: opening a FIFO must not wait for a writer
    except OSError as exc:
        raise IntakeError(f"cannot open file: {exc.strerror}") from None
    try:
        info = os.fstat(fd)  # of what was opened, not of what the name pointed to a moment before
        if not stat.S_ISREG(info.st_mode):
            raise IntakeError("not a regular file")
        if info.st_size > limits.max_bytes:
            raise IntakeError(f"file too large: {info.st_size} bytes (limit {limits.max_bytes})")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limits.max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > limits.max_bytes:
        raise IntakeError(f"file too large: more than {limits.max_bytes} bytes")
    return data


def header_pixels(data: bytes, limits: IntakeLimits = DEFAULT_LIMITS) -> int:
    """Width x height from the image header (no pixel decoded); refused like decode_photo would refuse it."""
    return _opened(data, limits)[1]


def _opened(data: bytes, limits: IntakeLimits) -> tuple[Image.Image, int]:
    if len(data) > limits.max_bytes:
        raise IntakeError(f"image too large: {len(data)} bytes (limit {limits.max_bytes})")
    if not data:  # as the dataset scan says it (layout.inspect_image): a copy cut short, a file never written
        raise IntakeError("unreadable image: zero-byte file")
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
    except UnidentifiedImageError:  # its message names the BytesIO object's address: a different text every run
        raise IntakeError("unreadable image: not a format Pillow reads (JPEG, PNG, WebP, BMP, TIFF, GIF, ...)") from None
    except Image.DecompressionBombError as exc:  # Pillow's own guard (twice its MAX_IMAGE_PIXELS), from the header too
        declared = re.search(r"(\d+) pixels", str(exc))
        size = f"{declared.group(1)} pixels" if declared else "over Pillow's limit"
        raise IntakeError(f"image too large: {size} (limit {limits.max_pixels} pixels)") from None
    except Exception as exc:  # PIL raises many types for bad input
        raise IntakeError(f"unreadable image: {type(exc).__name__}: {str(exc)[:120]}") from None
    width, height = image.size
    if width * height > limits.max_pixels:
        raise IntakeError(f"image too large: {width}x{height} pixels (limit {limits.max_pixels} pixels)")
    if width < 1 or height < 1:
        raise IntakeError(f"unreadable image: {width}x{height} pixels")
    return image, width * height


def decode_photo(data: bytes, limits: IntakeLimits = DEFAULT_LIMITS) -> Image.Image:
    """An upright RGB image from encoded bytes (maskops.pixels.upright_rgb, as in training), refusing oversize input
    before decoding a pixel, its longer side shrunk to `limits.max_side` (JPEGs are decoded at the reduced size
    straight away)."""
    image, _ = _opened(data, limits)
    try:
        image.draft("RGB", (limits.max_side, limits.max_side))  # JPEG: decode at 1/2, 1/4, 1/8 scale when that is enough
        image = upright_rgb(image)  # as training saw it: EXIF orientation applied, 16-bit grey scaled
        if max(image.size) > limits.max_side:
            image.thumbnail((limits.max_side, limits.max_side), Image.Resampling.BILINEAR)
        return image
    except Exception as exc:
        raise IntakeError(f"unreadable image: {type(exc).__name__}: {str(exc)[:120]}") from None


def open_photo(value: bytes | bytearray | memoryview | str | os.PathLike, limits: IntakeLimits = DEFAULT_LIMITS) -> Image.Image:
    """A photo given as encoded bytes or as a path to a regular file."""
    if isinstance(value, bytes | bytearray | memoryview):
        return decode_photo(bytes(value), limits)
    if isinstance(value, str | os.PathLike):
        return decode_photo(read_regular_file(value, limits), limits)
    if value is None or (isinstance(value, float) and value != value):  # None, or the NaN pandas makes of it
        raise IntakeError("no image in this row: give a file path or image bytes")
    raise IntakeError(f"expected a file path or image bytes, got {type(value).__name__}")
