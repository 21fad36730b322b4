"""Shared fixtures: tiny synthetic datasets made by maskops itself, once per test session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg
import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "true")
# Each xdist worker (and every process it starts) gets its share of the cores for torch's threads, set before torch
# loads: two workers each training with a thread per core ran at a fraction of their speed (bench/concurrency.py).
if (workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)) > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))

from maskops.synth.people import SynthConfig, synthesize

# The two longest tests (about 4 and 3.5 minutes of the suite's ~18 worker-minutes on 2 slow cores): each must start at once,
# and on its own worker, or the suite waits for them in a row. With `--maxschedchunk=2` (pyproject's addopts) xdist
# hands one worker items 0-1 and the other items 2-3, then two at a time as they finish.
LONGEST = ("test_the_production_profile_end_to_end", "test_the_gpu_check_runs_its_full_size_and_study_sections_on_the_cpu")


def pytest_collection_modifyitems(items: list) -> None:
    """The longest tests first, on two workers (LONGEST). Everything under tests/hostile/ is part of the hostile suite
    (`make test-hostile`, `pytest -m hostile`)."""
    for item in items:
        if "hostile" in Path(str(item.path)).parts:
            item.add_marker(pytest.mark.hostile)
    longest = [next(i for i in items if i.name == name) for name in LONGEST if any(i.name == name for i in items)]
    rest = [i for i in items if i not in longest]
    items[:] = (longest[:1] + rest[:1] + longest[1:] + rest[1:]) if longest else rest


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """Each test leaves torch's thread count (and maskops.cpus' record of torch's default) as it found them. A test that
    set 2 threads, or ran a bench script that took every core, left its worker at 2 for every later test: two workers
    with 2 spinning OpenMP threads each on 2 cores ran a training test at 1/7 of its speed (46 s against 6 s alone)."""
    import torch

    from maskops import cpus

    threads, default = torch.get_num_threads(), cpus._torch_default
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    cpus._torch_default = default


TINY = SynthConfig(profiles=6, eval_profiles=2, seed=3, gender_noise=0.0, age_noise=0.0, mask_swap_noise=0.0, mask_only_faces=2)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 training people (42 images) and 2 evaluation people, no label noise, and 2 real faces under mask_only/ (unmasked
    and painted: up to 6 mask-only photos). Treat as read-only."""
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


# -- Dagster helpers shared by the pipeline tests ------------------------------------------------


def stub_asset(key, value, io_manager_key: str = "manifest_io_manager", metadata: dict | None = None):
    """An asset that returns `value` (or, when it is a function, what it returns at each run): it stands in for an
    upstream stage, so a test runs one stage for real."""

    @dg.asset(key=key, io_manager_key=io_manager_key)
    def stub() -> dg.MaterializeResult:
        return dg.MaterializeResult(value=value() if callable(value) else value, metadata=metadata or {})

    return stub


def pipeline_resources(state: Path, dataset: Path, models_dir: Path | None = None, tracking=None) -> dict:
    """Every resource of the code location (resources.build_resources) on a test's own state folder, with one
    thread for the image models, the CPU for training, no GX Data Docs, and — given `models_dir` — the tiny
    segmenter as background model. Pass `tracking` (the session's MLflow store) to tests that track runs."""
    from maskops.settings import Settings
    from resources import BackgroundRemoverResource, Compute, DataQuality, FaceDetectorResource, build_resources

    settings = Settings.from_env({"MASKOPS_HOME": str(state), "MASKOPS_DATASET": str(dataset)})
    resources = build_resources(settings)
    resources |= {
        "face_detector": FaceDetectorResource(threads=1),
        "compute": Compute(checkpoints_dir=str(settings.checkpoints), device="cpu"),
        "data_quality": DataQuality(gx_project_dir=str(state / "gx"), reports_dir=str(settings.reports / "quality"), data_docs=False),
    }
    if models_dir is not None:
        resources["background_remover"] = BackgroundRemoverResource(
            models_dir=str(models_dir), model_path=str(models_dir / "tiny_segmenter.onnx"), threads=1
        )
    if tracking is not None:
        resources["tracking"] = tracking
    return resources


@pytest.fixture(scope="module")
def tracking_store(tmp_path_factory: pytest.TempPathFactory):
    """An MLflow store (SQLite) and registry per test module: creating one runs its migrations (~7 s)."""
    from resources import MlflowTracking

    root = tmp_path_factory.mktemp("mlflow")
    tracking = MlflowTracking(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_root=str(root / "artifacts"), experiment="maskops-test"
    )
    tracking.service().experiment_id()
    return tracking


def tiny_recipe(models_dir: Path, **crop) -> str:
    """The crop recipe (JSON) of crops made with the tiny segmenter, for tests that stand photos in for crops."""
    from maskops.crop import CropConfig, CropRecipe
    from maskops.files import file_digest

    config = CropConfig(background_model="u2net_custom", **crop)
    return CropRecipe(config, background_sha256=file_digest(models_dir / "tiny_segmenter.onnx")).to_json()


def photos_as_crops(manifest, recipe: str):
    """A manifest whose photos stand in for crops (the crop stage has its own tests)."""
    return manifest.assign(crop_path=manifest["path"], crop_key=manifest["content_hash"], crop_recipe=recipe)
