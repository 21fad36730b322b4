"""Shared fixtures: tiny synthetic datasets made by maskops itself, once per test session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "true")

from maskops.synth.people import SynthConfig, synthesize

TINY = SynthConfig(profiles=6, eval_profiles=2, seed=3, gender_noise=0.0, age_noise=0.0, mask_swap_noise=0.0)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 training people (42 images) and 2 evaluation people, no label noise. Treat as read-only."""
    root = tmp_path_factory.mktemp("tiny") / "dataset"
    synthesize(root, TINY, workers=2)
    return root


@pytest.fixture
def dataset_copy(tiny_dataset: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny dataset that a test may break."""
    root = tmp_path / "dataset"
    shutil.copytree(tiny_dataset, root)
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under root, to prove nothing was modified."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rembg model folder holding a tiny segmenter (no download, real rembg session path)."""
    from tests.onnx_models import brightness_segmenter

    folder = tmp_path_factory.mktemp("models")
    brightness_segmenter(folder / "tiny_segmenter.onnx")
    return folder


@pytest.fixture(scope="session")
def face_detector():
    from maskops.faces import FaceDetector

    return FaceDetector(threads=1)


@pytest.fixture(scope="session")
def astronaut():
    """A real face photo that ships with scikit-image."""
    from PIL import Image
    from skimage import data

    return Image.fromarray(data.astronaut())
