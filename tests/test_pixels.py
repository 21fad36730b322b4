"""Photos become the same RGB pixels in training and in serving: upright by their EXIF orientation (a phone stores the
pixels as the sensor read them and a tag saying how to turn them), 16-bit and 32-bit grey scaled to 8 bits. Both were
once wrong: a phone photo was cropped and served sideways, and a 16-bit grey PNG was served as a white square."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskops.intake import decode_photo
from maskops.layout import inspect_image
from maskops.pixels import IMAGE_EXTENSIONS, TRANSPOSE
from maskops.store import ImageSource

# how the camera stored the pixels of an upright scene for each orientation tag: the inverse of the turn that shows it
STORED = {o: {Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270, Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90}.get(m, m)
          for o, m in TRANSPOSE.items()}  # fmt: skip


def phone_jpeg(upright: Image.Image, orientation: int) -> bytes:
    """A JPEG as a phone writes it: the pixels stored turned, and the EXIF orientation tag that turns them back."""
    stored = upright.transpose(STORED[orientation]) if orientation in STORED else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def portrait(astronaut) -> Image.Image:
    """A 384 x 512 photo (portrait, a multiple of the JPEG block on both sides): a quarter turn cannot hide."""
    return astronaut.crop((64, 0, 448, 512))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_phone_photo_is_read_upright_in_training_and_in_serving(portrait: Image.Image, orientation: int, tmp_path: Path):
    data = phone_jpeg(portrait, orientation)
    (tmp_path / "photo.jpg").write_bytes(data)
    upright = np.asarray(Image.open(io.BytesIO(phone_jpeg(portrait, 1))).convert("RGB"), dtype=np.int16)
    served = np.asarray(decode_photo(data), dtype=np.int16)  # maskops predict and maskops serve
    trained = np.asarray(ImageSource(tmp_path).open_rgb("photo.jpg"), dtype=np.int16)  # the crop stage and the generated variant
    for pixels in (served, trained):
        assert pixels.shape == upright.shape == (512, 384, 3)
        assert np.abs(pixels - upright).mean() < 2.0  # the same picture, up to JPEG's rounding of the turned blocks
    facts = inspect_image(tmp_path / "photo.jpg")
    assert (facts.width, facts.height) == (384, 512)  # the manifest's size is the upright one


def test_a_damaged_exif_block_is_read_as_upright(portrait: Image.Image):
    buffer = io.BytesIO()
    portrait.save(buffer, "JPEG", exif=b"Exif\x00\x00MM\x00*garbage")
    assert decode_photo(buffer.getvalue()).size == (384, 512)


@pytest.mark.parametrize(
    ("mode", "scale"),
    [("I;16", 257.0), ("I", 257.0), ("F", 1 / 255)],  # a 16-bit PNG, a 32-bit integer TIFF of 16-bit data, floats in 0..1
)
def test_high_bit_depth_grey_is_scaled_to_eight_bits_not_clipped(portrait: Image.Image, mode: str, scale: float, tmp_path: Path):
    grey = np.asarray(portrait.convert("L"), dtype=np.float64)
    wide = Image.fromarray((grey * scale).astype({"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]))
    buffer = io.BytesIO()
    wide.save(buffer, "PNG" if mode == "I;16" else "TIFF")
    assert Image.open(io.BytesIO(buffer.getvalue())).mode == mode
    (tmp_path / "grey").write_bytes(buffer.getvalue())
    for decoded in (decode_photo(buffer.getvalue()), ImageSource(tmp_path).open_rgb("grey")):
        pixels = np.asarray(decoded, dtype=np.float64)
        assert decoded.mode == "RGB" and np.abs(pixels[..., 0] - grey).max() <= 1.0  # not a white (or black) square


def test_photos_saved_as_jfif_jpe_or_avif_are_picked_up_and_read(portrait: Image.Image, tmp_path: Path):
    """`maskops predict <folder>` skipped them (its own list of suffixes), and the dataset layout called them no image."""
    from tracking.prediction import expand_inputs

    folder = tmp_path / "downloads"
    folder.mkdir()
    formats = {"a.jfif": "JPEG", "b.JPE": "JPEG", "c.avif": "AVIF"}
    for name, kind in formats.items():
        portrait.save(folder / name, kind)
    (folder / "notes.txt").write_text("not a photo")
    assert [p.name for p in expand_inputs([folder])] == list(formats)
    for name in formats:
        assert Path(name).suffix.lower() in IMAGE_EXTENSIONS
        assert inspect_image(folder / name).problem is None and decode_photo((folder / name).read_bytes()).size == portrait.size


def test_an_empty_file_is_called_empty_not_an_unknown_format():
    """A zero-byte photo (a copy cut short) is named as such when served or predicted, as the dataset scan names it."""
    from maskops.intake import IntakeError, header_pixels

    with pytest.raises(IntakeError, match=r"^unreadable image: zero-byte file$"):
        header_pixels(b"")
    with pytest.raises(IntakeError, match="not a format Pillow reads"):
        header_pixels(b"not a photo")
