"""Image-side resources: the content-addressed store, the face detector and the background remover."""

import dataclasses
import functools
from pathlib import Path

import dagster as dg
from pydantic import Field

from maskops.background import BackgroundRemover, model_file
from maskops.cpus import cpu_budget
from maskops.faces import DetectorConfig, FaceDetector
from maskops.files import file_digest
from maskops.options import from_plain, help_of
from maskops.store import ImageSource, ImageStore


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is there, else 'cpu'; anything else as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _field(cls, name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(cls) if f.name == name)


class ImageStoreResource(dg.ConfigurableResource):
    """Where derived images live: a local folder or an fsspec URL (s3://..., gs://..., memory://...)."""

    root: str = Field(description="Folder or URL of the content-addressed image store.")

    def store(self) -> ImageStore:
        return ImageStore(self.root)

    def source(self, dataset_root: str) -> ImageSource:
        """Opens manifest paths: dataset-relative ones and store:<key> ones."""
        return ImageSource(dataset_root, self.store())


class FaceDetectorResource(dg.ConfigurableResource):
    """MTCNN from facenet-pytorch (weights ship in the wheel)."""

    device: str = Field(default="auto", description="'auto' (CUDA when present), 'cpu' or 'cuda:N'.")
    thresholds: list[float] = Field(default=list(DetectorConfig().thresholds), description=help_of(_field(DetectorConfig, "thresholds")))
    min_face_size: int = Field(default=DetectorConfig().min_face_size, description=help_of(_field(DetectorConfig, "min_face_size")))
    threads: int = Field(
        default=0,
        description="Torch CPU threads (0: the process's budget, maskops.cpus: MASKOPS_THREADS, else torch's default capped at the usable CPUs).",
    )

    def config(self) -> DetectorConfig:
        """The settings that change what is found (they are part of every cache key that uses the detector)."""
        return from_plain(DetectorConfig, {"thresholds": self.thresholds, "min_face_size": self.min_face_size})

    def detector(self) -> FaceDetector:
        return _detector(self.config(), resolve_device(self.device), self.threads)


class BackgroundRemoverResource(dg.ConfigurableResource):
    """rembg with a model provisioned offline (`maskops fetch-models`), one session per process and settings."""

    models_dir: str = Field(description="rembg's model folder (U2NET_HOME).")
    model_path: str = Field(default="", description="For model 'u2net_custom': an ONNX file under models_dir.")
    threads: int = Field(
        default=0,
        description="ONNX Runtime intra-op threads (0: the process's budget, maskops.cpus: MASKOPS_THREADS, else OMP_NUM_THREADS, else the usable CPUs).",
    )
    device: str = Field(default="auto", description="'auto' (CUDA when present: the graph runs in PyTorch, batched), 'cpu' or 'cuda:N'.")

    def model_file(self, model: str) -> Path:
        """The ONNX file `model` loads (raises, saying what to run, when it is missing)."""
        return model_file(self.models_dir, model, self.model_path or None)

    def remover(self, model: str, color: tuple[int, int, int], resolution: int = 320) -> BackgroundRemover:
        content = file_digest(self.model_file(model))  # a model file replaced on disk gets a session of its own
        return _remover(self.models_dir, model, self.model_path or None, self.threads or cpu_budget(), tuple(color), resolution,
                        resolve_device(self.device), content)  # fmt: skip


# The image models, kept for the process: a run's crop steps share one process on the local profile (in-process
# executor), and each new ONNX Runtime session spends its first batches warming up — about 2-3 s a step on 2 cores,
# ~7 s of a demo run's cropping when every step made its own (bench/orchestration.py's per-stage table).
@functools.lru_cache(maxsize=2)
def _detector(config: DetectorConfig, device: str, threads: int) -> FaceDetector:
    return FaceDetector(config, device=device, threads=threads)


@functools.lru_cache(maxsize=2)
def _remover(models_dir: str, model: str, model_path: str | None, threads: int, color: tuple[int, ...], resolution: int, device: str,
             content: str) -> BackgroundRemover:  # fmt: skip
    return BackgroundRemover(
        models_dir, model=model, model_path=model_path, threads=threads, color=color, resolution=resolution, device=device
    )
