"""Grad-CAM: where a model looks when it predicts a class (the original used SmoothGradCAM++).

Computed on the backbone's last feature map (CNNs give (N, C, H, W); token models (N, L, C)
are folded back into a square grid), for the model's own top class.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from maskops.data import normalize
from maskops.models import TASKS, MaskNet, class_probabilities


def _as_map(features: torch.Tensor) -> torch.Tensor:
    if features.dim() == 4:
        return features
    n, length, c = features.shape
    side = math.isqrt(length)
    tokens = features[:, length - side * side :, :]  # drop class/register tokens
    return tokens.transpose(1, 2).reshape(n, c, side, side)


def gradcam(net: MaskNet, images: torch.Tensor) -> np.ndarray:
    """(N, H, W) heat maps in 0..1 for uint8 images (N, 3, H, W)."""
    net.eval()
    device = next(net.parameters()).device
    x = normalize(images.to(device))
    maps, pooled = [], []
    for backbone in net.backbones:
        features = backbone.forward_features(x)
        features.retain_grad()
        maps.append(features)
        pooled.append(backbone.forward_head(features, pre_logits=True))
    if net.cross_stitch is not None:
        pooled = net.cross_stitch(pooled)
        outputs = {task: net.heads[task](p) for task, p in zip(TASKS, pooled, strict=True)}
    else:
        outputs = net.head_outputs(pooled[0])
    log_probs = class_probabilities(outputs).clamp_min(1e-8).log()
    top = log_probs.argmax(dim=1)
    net.zero_grad(set_to_none=True)
    log_probs.gather(1, top[:, None]).sum().backward()
    cams = 0
    for features in maps:
        fmap, grad = _as_map(features), _as_map(features.grad)
        weights = grad.mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((weights * fmap).sum(dim=1, keepdim=True))
        cams = cams + torch.nn.functional.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)
    cams = cams[:, 0].detach()
    low = cams.flatten(1).min(1).values[:, None, None]
    high = cams.flatten(1).max(1).values[:, None, None]
    return ((cams - low) / (high - low).clamp_min(1e-8)).cpu().numpy()
