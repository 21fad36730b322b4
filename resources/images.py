"""Image-side resources: the content-addressed store, the face detector and the background remover."""

import os

import dagster as dg
from pydantic import Field

from maskops.background import BackgroundRemover
from maskops.faces import FaceDetector
from maskops.store import ImageSource, ImageStore


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
    thresholds: list[float] = Field(default=[0.6, 0.7, 0.7], description="P-Net, R-Net, O-Net thresholds.")
    min_face_size: int = Field(default=20)
    threads: int = Field(default=0, description="Torch CPU threads (0: all cores).")

    def detector(self) -> FaceDetector:
        device = self.device
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        return FaceDetector(device=device, thresholds=self.thresholds, min_face_size=self.min_face_size, threads=self.threads)


class BackgroundRemoverResource(dg.ConfigurableResource):
    """rembg with a model provisioned offline (`maskops fetch-models`), one session per step."""

    models_dir: str = Field(description="rembg's model folder (U2NET_HOME).")
    model_path: str = Field(default="", description="For model 'u2net_custom': an ONNX file under models_dir.")
    threads: int = Field(default=0, description="ONNX Runtime intra-op threads (0: all cores).")

    def remover(self, model: str, color: tuple[int, int, int]) -> BackgroundRemover:
        return BackgroundRemover(
            self.models_dir, model=model, model_path=self.model_path or None, threads=self.threads or (os.cpu_count() or 1), color=color
        )
