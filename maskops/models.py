"""Models: any timm backbone, one of three heads, partial fine-tuning — one factory, no wrappers per architecture.

Heads (the original's three ideas, done once):
- multiclass: 18 logits.
- hard sharing: one backbone pass, three heads (mask 3, gender 2, age 3).
- soft sharing: one backbone per task; pooled features mixed by a learned cross-stitch unit.
Multi-task outputs recombine into 18-class probabilities (the product of the task
probabilities), so every head is evaluated and ensembled the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import nn

TASKS = {"mask": 3, "gender": 2, "age": 3}
HEAD_MODES = ("multiclass", "hard", "soft")
STEM_PATTERN = re.compile(r"^(stem|patch_embed|conv_stem|conv1|bn1|embed|pos_embed|cls_token)")
STAGE_PATTERN = re.compile(r"^(?:stages|layers|blocks|layer|features)\.?(\d+)")


@dataclass(frozen=True)
class FreezeSpec:
    """What not to train: the stem (patch embedding), the first `stages` stages, and any parameter matching `patterns`."""

    stem: bool = False
    stages: int = 0
    patterns: tuple[str, ...] = field(default_factory=tuple)

    @property
    def active(self) -> bool:
        return self.stem or self.stages > 0 or bool(self.patterns)


def create_backbone(name: str, pretrained: bool = False, pretrained_file: str | None = None) -> nn.Module:
    """A timm model without its classifier. `pretrained_file` (.pth/.safetensors) loads local weights; no file and
    pretrained=False means random init (the scratch preset)."""
    import timm

    if pretrained_file:
        return timm.create_model(name, pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": pretrained_file})
    return timm.create_model(name, pretrained=pretrained, num_classes=0)


class CrossStitch(nn.Module):
    """Mixes per-task features: out_i = sum_j a_ij * f_j, a learned (starts near identity)."""

    def __init__(self, tasks: int):
        super().__init__()
        self.weights = nn.Parameter(torch.full((tasks, tasks), 0.1 / max(tasks - 1, 1)) + torch.eye(tasks) * 0.9)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        stacked = torch.stack(features, dim=0)  # (T, N, C)
        mixed = torch.einsum("ij,jnc->inc", self.weights, stacked)
        return list(mixed.unbind(0))


# A submodule's name must be an identifier that is not a Python keyword: the module torch.export.load(...).module() and
# mlflow.pytorch.load_model give back is generated code that reads `self.net.heads.<name>`, and a head named "class"
# made every multiclass pt2 graph fail to load with a SyntaxError (torch 2.14). Its output keeps the name "class".
MULTICLASS_HEAD = "classes"
OUTPUT_OF = {MULTICLASS_HEAD: "class"}
OLD_HEAD_PREFIX = "heads.class."  # weights and checkpoints written before 2026-11-30


def _rename_old_head(module, state_dict, prefix, *_args) -> None:
    """load_state_dict of a multiclass MaskNet saved when its head was named "class": the same tensors, renamed."""
    old, new = prefix + OLD_HEAD_PREFIX, prefix + f"heads.{MULTICLASS_HEAD}."
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[new + key.removeprefix(old)] = state_dict.pop(key)


class MaskNet(nn.Module):
    """A timm backbone (or three) and the head of `mode`; forward returns a dict of logits."""

    def __init__(
        self, backbone: str, mode: str = "multiclass", pretrained: bool = False, pretrained_file: str | None = None, drop: float = 0.0
    ):
        super().__init__()
        if mode not in HEAD_MODES:
            raise ValueError(f"head mode must be one of {HEAD_MODES}, got {mode!r}")
        self.mode = mode
        count = 3 if mode == "soft" else 1
        self.backbones = nn.ModuleList([create_backbone(backbone, pretrained, pretrained_file) for _ in range(count)])
        width = self.backbones[0].num_features
        self.dropout = nn.Dropout(drop)
        if mode == "multiclass":
            self.heads = nn.ModuleDict({MULTICLASS_HEAD: nn.Linear(width, 18)})
            self.register_load_state_dict_pre_hook(_rename_old_head)
        else:
            self.heads = nn.ModuleDict({task: nn.Linear(width, n) for task, n in TASKS.items()})
        self.cross_stitch = CrossStitch(3) if mode == "soft" else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.mode == "soft":
            features = self.cross_stitch([b(x) for b in self.backbones])
            return {task: self.heads[task](self.dropout(f)) for task, f in zip(TASKS, features, strict=True)}
        return self.head_outputs(self.dropout(self.backbones[0](x)))  # one backbone pass for every head

    def head_outputs(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every head of a shared backbone on its pooled features: {"class": ...} or {"mask", "gender", "age"}."""
        return {OUTPUT_OF.get(name, name): head(pooled) for name, head in self.heads.items()}


def pooled_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What the heads of a MaskNet (or the ProbabilityModel around it) read: the pooled features of every backbone,
    side by side (N, width x backbones)."""
    net = model.net if isinstance(model, ProbabilityModel) else model
    if not isinstance(net, MaskNet):
        raise TypeError(f"pooled features need a maskops MaskNet, got {type(net).__name__} (an exported graph hides its backbone)")
    return torch.cat([backbone(x) for backbone in net.backbones], dim=1)


def class_probabilities(outputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """(N, 18) probabilities from any head: softmax, or the product of the task softmaxes in class order."""
    if "class" in outputs:
        return outputs["class"].softmax(dim=1)
    mask, gender, age = (outputs[t].softmax(dim=1) for t in TASKS)
    joint = mask[:, :, None, None] * gender[:, None, :, None] * age[:, None, None, :]  # (N, 3, 2, 3)
    return joint.reshape(joint.shape[0], 18)  # index 6*m + 3*g + a


class ProbabilityModel(nn.Module):
    """What gets logged and served: images in, 18 class probabilities out."""

    def __init__(self, net: MaskNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return class_probabilities(self.net(x))


# A logged model's weights next to its pt2 graph: rebuilt from timm in ~0.05 s where the graph takes ~1.4 s to deserialize
# (a member is loaded by its quality check, the ensemble, the submission and every predict), and never unpickled.
WEIGHTS_FILE = "weights.safetensors"


def save_weights(model: ProbabilityModel, path, backbone: str, head: str) -> None:
    """`model`'s tensors as safetensors, its architecture (timm backbone, head mode) in the file's metadata."""
    from safetensors.torch import save_file

    tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"backbone": backbone, "head": head})


def load_weights(path) -> ProbabilityModel:
    """The model `save_weights` wrote, in eval mode; every tensor must fit the architecture its metadata names."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if "backbone" not in meta or "head" not in meta:
        raise ValueError(f"{path} does not name its architecture (backbone, head): not written by maskops.models.save_weights")
    model = ProbabilityModel(MaskNet(meta["backbone"], meta["head"]))
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.eval()


def stage_of(name: str, offset: int = 0) -> int | None:
    """-1 for the stem, k for stage k, None for anything else (neck, head)."""
    if STEM_PATTERN.match(name):
        return -1
    match = STAGE_PATTERN.match(name)
    return int(match.group(1)) - offset if match else None


def freeze(model: MaskNet, spec: FreezeSpec) -> int:
    """Freeze backbone parameters per `spec` (in every backbone); returns the trainable parameter count."""
    patterns = [re.compile(p) for p in spec.patterns]
    for backbone in model.backbones:
        names = [n for n, _ in backbone.named_parameters()]
        indices = [m.group(1) for n in names if (m := STAGE_PATTERN.match(n))]
        offset = min(int(i) for i in indices) if indices else 0  # ResNet counts layer1..layer4
        for name, param in backbone.named_parameters():
            stage = stage_of(name, offset)
            frozen = (
                (spec.stem and stage == -1) or (stage is not None and 0 <= stage < spec.stages) or any(p.search(name) for p in patterns)
            )
            if frozen:
                param.requires_grad_(False)
    return trainable_parameters(model)


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def total_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
