"""Background removal through rembg's real session path (tiny ONNX model) and the crop stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from maskops.background import BackgroundRemover, ModelMissingError
from maskops.crop import CropConfig, Cropper, CropRecipe, CropRecipeError
from maskops.files import file_digest
from maskops.layout import scan_competition
from maskops.store import ImageSource, ImageStore
from tests.onnx_models import brightness_segmenter


def _recipe(models_dir: Path, **crop) -> CropRecipe:
    """Crop settings with the tiny segmenter's content in the recipe."""
    return CropRecipe(CropConfig(**crop), background_sha256=file_digest(models_dir / "tiny_segmenter.onnx"))


def _rembg_session(models_dir: Path):
    import os
    import sys

    if "numba" not in sys.modules:
        # importing rembg imports pymatting, whose alpha-matting kernels numba compiles eagerly at import: 60-90 s in a
        # fresh venv on 2 cores, for code these tests never call (alpha matting stays off). Interpreted, they import in ~1 s.
        before = os.environ.get("NUMBA_DISABLE_JIT")
        os.environ["NUMBA_DISABLE_JIT"] = "1"
        try:
            import rembg  # noqa: F401
        finally:
            os.environ.pop("NUMBA_DISABLE_JIT") if before is None else os.environ.update(NUMBA_DISABLE_JIT=before)
            from numba.core import config

            config.reload_config()  # numba reads it once: later numba code in this worker compiles as usual
    from rembg import new_session

    os.environ["U2NET_HOME"] = str(models_dir)  # rembg only loads models from under its home
    return new_session("u2net_custom", model_path=str(models_dir / "tiny_segmenter.onnx"))


def _remover(models_dir: Path) -> BackgroundRemover:
    return BackgroundRemover(models_dir, model="u2net_custom", model_path=models_dir / "tiny_segmenter.onnx", threads=1, color=(0, 0, 255))


def test_rembg_session_replaces_the_background(models_dir: Path):
    picture = np.full((200, 160, 3), 20, np.uint8)
    picture[60:140, 40:120] = 230  # a bright "person" on a dark background
    out = np.asarray(_remover(models_dir).apply(Image.fromarray(picture)))
    assert out[100, 80, 0] > 150  # foreground kept
    assert out[5, 5, 2] > 200 and out[5, 5, 0] < 30  # background replaced by the colour


def test_missing_models_are_never_downloaded(tmp_path: Path, models_dir: Path):
    with pytest.raises(ModelMissingError, match="maskops fetch-models"):
        BackgroundRemover(tmp_path / "empty", model="u2netp")
    with pytest.raises(ModelMissingError, match="not provisioned offline"):
        BackgroundRemover(tmp_path / "empty", model="u2net")
    outside = brightness_segmenter(tmp_path / "elsewhere" / "m.onnx")
    with pytest.raises(ValueError, match="within the models directory"):
        BackgroundRemover(models_dir, model="u2net_custom", model_path=outside)


class Counting:
    """Wraps a model object and counts the images it is asked to process."""

    def __init__(self, inner, method: str):
        self.inner, self.method, self.calls = inner, method, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def apply_all(self, images):
        self.calls += len(images)
        return self.inner.apply_all(images)

    def detect(self, images):
        self.calls += len(images)
        return self.inner.detect(images)


@pytest.fixture
def tiny_manifest(tiny_dataset: Path) -> pd.DataFrame:
    return scan_competition(tiny_dataset).train


def test_crop_stage_records_and_reuses(tiny_dataset: Path, tiny_manifest: pd.DataFrame, models_dir: Path, face_detector, tmp_path: Path):
    store = ImageStore(tmp_path / "store")
    source = ImageSource(tiny_dataset, store)
    remover, detector = Counting(_remover(models_dir), "apply"), Counting(face_detector, "detect")
    cropper = Cropper(_recipe(models_dir, batch_size=8), store, remover, detector)
    records, stats = cropper.run(tiny_manifest, source.open_rgb)
    assert stats.processed == len(tiny_manifest) == 42 and stats.reused == 0
    assert remover.calls == 42 and detector.calls == 42
    assert records["content_hash"].is_unique and set(records["content_hash"]) == set(tiny_manifest["content_hash"])
    assert records["face_found"].any()  # the toy segmenter blanks dark skin; the real u2netp does not
    assert (records["fallback"] == ~records["face_found"]).all()
    found = records[records["face_found"]]
    assert (found["face_prob"] >= 0.9).all() and (found["box_x1"] > found["box_x0"]).all()
    crop = source.open_rgb(records["crop_path"].iloc[0])
    assert crop.size == (256, 256)

    # a second run, or another variant with the same images, computes nothing
    again, stats2 = Cropper(_recipe(models_dir), store, remover, detector).run(
        tiny_manifest.sample(frac=1, random_state=1), source.open_rgb
    )
    assert stats2.processed == 0 and stats2.reused == 42 and remover.calls == 42 and detector.calls == 42
    pd.testing.assert_frame_equal(
        again.sort_values("content_hash", ignore_index=True), records.sort_values("content_hash", ignore_index=True)
    )

    # new parameters are new work
    _, stats3 = Cropper(_recipe(models_dir, margin=10), store, remover, detector).run(tiny_manifest.head(7), source.open_rgb)
    assert stats3.processed == 7


def test_steps_can_be_reordered_or_switched_off(
    tiny_dataset: Path, tiny_manifest: pd.DataFrame, models_dir: Path, face_detector, tmp_path: Path
):
    store = ImageStore(tmp_path / "store")
    source = ImageSource(tiny_dataset, store)
    sample = tiny_manifest.head(7)
    records, _ = Cropper(_recipe(models_dir, order="crop_first"), store, _remover(models_dir), face_detector).run(sample, source.open_rgb)
    assert records["face_found"].mean() >= 0.8  # detected before the background goes
    only_crop, _ = Cropper(CropRecipe(CropConfig(remove_background=False)), store, None, face_detector).run(sample, source.open_rgb)
    assert only_crop["face_found"].mean() >= 0.8
    assert source.open_rgb(only_crop["crop_path"].iloc[0]).size == (256, 256)
    only_bg, _ = Cropper(_recipe(models_dir, crop_face=False), store, _remover(models_dir), None).run(sample, source.open_rgb)
    assert source.open_rgb(only_bg["crop_path"].iloc[0]).size == (384, 512) and not only_bg["fallback"].any()
    with pytest.raises(ValueError, match="no background remover"):
        Cropper(_recipe(models_dir), store, None, face_detector)
    with pytest.raises(CropRecipeError, match="sha256 is missing"):
        CropRecipe(CropConfig())
    with pytest.raises(ValueError, match="order must be one of"):
        CropConfig(order="sideways")


def test_faceless_image_falls_back_to_centre_crop(models_dir: Path, face_detector, tmp_path: Path):
    store = ImageStore(tmp_path / "store")
    blank = Image.fromarray(np.tile(np.linspace(60, 200, 384, dtype=np.uint8), (512, 1))).convert("RGB")  # no face
    images = pd.DataFrame({"content_hash": ["blank"], "path": ["unused"]})
    records, stats = Cropper(_recipe(models_dir), store, _remover(models_dir), face_detector).run(images, lambda _: blank)
    row = records.iloc[0]
    assert stats.fallbacks == 1 and row["fallback"] and not row["face_found"]
    assert (row["box_x0"], row["box_y0"], row["box_x1"], row["box_y1"]) == (38, 102, 346, 410)


def test_our_u2net_feeding_matches_rembgs_own(models_dir: Path, tiny_dataset: Path):
    remover = _remover(models_dir)
    photo = Image.open(next((tiny_dataset / "train/images").iterdir()) / "normal.jpg").convert("RGB")
    ours = np.asarray(remover.mask(photo), float)
    theirs = np.asarray(_rembg_session(models_dir).predict(photo)[0], float)  # rembg's Lanczos/float64 path
    assert ours.shape == theirs.shape
    # the toy model segments by pixel brightness, so it feels bilinear vs Lanczos resizing more than
    # u2netp does (99.9% agreement on the demo data, measured when this path was written)
    assert ((ours > 128) == (theirs > 128)).mean() > 0.98 and np.abs(ours - theirs).mean() < 5


def test_the_gpu_path_of_the_background_model_matches_onnxruntime(models_dir: Path, tiny_dataset: Path):
    """On CUDA the U2-Net graph runs in PyTorch (converted by onnx2torch), batched; here the same conversion runs on the
    CPU next to ONNX Runtime. Stated tolerance: 1e-4 on the scores (the real u2netp measured 4.3e-7 when this was written)."""
    from maskops.background import U2Net

    photos = [
        Image.open(p).convert("RGB").resize((256, 256)) for p in sorted(next((tiny_dataset / "train/images").iterdir()).iterdir())[:3]
    ]
    x = np.stack([np.asarray(p, dtype=np.float32) / 255 for p in photos]).transpose(0, 3, 1, 2).astype(np.float32)
    onnxruntime_scores = U2Net(models_dir / "tiny_segmenter.onnx", threads=1)(x)
    torch_scores = U2Net(models_dir / "tiny_segmenter.onnx", backend="torch")(x)
    assert onnxruntime_scores.shape == torch_scores.shape == (3, 256, 256)  # any batch and side, not only rembg's 1 x 320
    assert np.abs(onnxruntime_scores - torch_scores).max() < 1e-4
    remover = _remover(models_dir)
    one_by_one = [np.asarray(remover.mask(p)) for p in photos]
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(one_by_one, remover.masks(photos), strict=True))


def test_the_image_models_are_made_once_a_process_and_anew_for_a_replaced_model_file(tmp_path: Path):
    """The crop steps of a local run share one process: they share its image models (a new ONNX Runtime session
    spends seconds warming up) — but a model file replaced on disk, or other settings, get models of their own."""
    from resources.images import BackgroundRemoverResource, FaceDetectorResource

    models = tmp_path / "models"
    brightness_segmenter(models / "tiny_segmenter.onnx")
    resource = BackgroundRemoverResource(models_dir=str(models), model_path=str(models / "tiny_segmenter.onnx"), threads=1, device="cpu")
    first = resource.remover("u2net_custom", (0, 0, 255))
    assert resource.remover("u2net_custom", (0, 0, 255)) is first  # the next step's
    assert resource.remover("u2net_custom", (0, 255, 0)) is not first
    picture = np.full((64, 64, 3), 20, np.uint8)
    picture[16:48, 16:48] = 230
    assert np.asarray(first.apply(Image.fromarray(picture)))[5, 5, 2] > 200
    brightness_segmenter(models / "tiny_segmenter.onnx", scale=-4.0)  # replaced: bright is now background
    replaced = resource.remover("u2net_custom", (0, 0, 255))
    assert replaced is not first and np.asarray(replaced.apply(Image.fromarray(picture)))[32, 32, 2] > 200
    detector = FaceDetectorResource(device="cpu")
    assert detector.detector() is detector.detector()
    assert FaceDetectorResource(device="cpu", min_face_size=40).detector() is not detector.detector()
