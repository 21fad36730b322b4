"""A registered maskops-ensemble made in seconds, for the serving and predict tests and bench/predict_load.py:
untrained members logged as pt2 graphs and registered as variants, the real pyfunc from code on top (what the
`ensemble` asset registers, without the evaluation around it: the members' weights as safetensors, or with
`member_architecture=False` as members registered before their metadata named their architecture: the pt2 graphs)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskops.variants import VARIANTS


@dataclass(frozen=True)
class Registered:
    ensemble_uri: str  # models:/maskops-ensemble/N
    member_uris: list[str]  # models:/maskops-<variant>/N


def register_ensemble(service, background_file: Path, backbone: str = "resnet10t", members: int = 1, image_size: int = 32,
                      crop_size: int = 96, alias: str = "champion", member_architecture: bool = True,
                      photo_side: int | None = None) -> Registered:  # fmt: skip
    """Log `members` untrained members and the ensemble pyfunc over them; the ensemble version gets `alias`. With
    `photo_side`, the pyfunc shrinks larger photos to it before cropping (as the `ensemble` asset records it)."""
    import torch

    from maskops.crop import CropConfig, CropRecipe
    from maskops.files import file_digest
    from maskops.models import MaskNet, ProbabilityModel
    from tracking.ensemble import ENSEMBLE_NAME, MASKOPS_CODE, MODEL_CODE, REQUIREMENTS, member_artifacts, signature
    from tracking.models import register_passing
    from tracking.service import pinned

    name = "u2netp" if background_file.name == "u2netp.onnx" else "u2net_custom"
    recipe = CropRecipe(CropConfig(background_model=name, size=crop_size), background_sha256=file_digest(background_file)).to_json()
    torch.manual_seed(0)
    specs, uris = [], []
    with service.run("members", {}) as run:
        for variant in VARIANTS[:members]:
            model = ProbabilityModel(MaskNet(backbone, "hard")).eval()
            example = np.zeros((2, 3, image_size, image_size), np.float32)
            metadata = {"image_size": image_size, "crop_recipe": recipe}
            if member_architecture:
                metadata["architecture"] = {"backbone": backbone, "head": "hard"}
            logged = run.log_pytorch_model(model, example, metadata, pinned("torch"))
            version = register_passing(service, variant, logged, {"val_macro_f1": 0.5, "floor": 0.1})
            uris.append(f"models:/maskops-{variant}/{version}")
            specs.append({"variant": variant, "artifact": f"member_{variant}", "image_size": image_size, "model_uri": uris[-1]})
    with service.run("ensemble", {}) as run, tempfile.TemporaryDirectory() as tmp:
        artifacts = member_artifacts(service, specs, Path(tmp))
        config = {"members": specs, "weights": [1.0] * members, "tta": False, "temperatures": [1.0] * members, "crop_recipe": recipe,
                  "background_model_name": name} | ({"photo_side": photo_side} if photo_side else {})  # fmt: skip
        artifacts["background_model"] = str(background_file)
        logged = run.log_pyfunc_model("ensemble", MODEL_CODE, artifacts, config, signature(), [str(MASKOPS_CODE)], pinned(*REQUIREMENTS))
    version = service.register(ENSEMBLE_NAME, logged)
    service.client.set_registered_model_alias(ENSEMBLE_NAME, alias, version)
    return Registered(f"models:/{ENSEMBLE_NAME}/{version}", uris)
