"""The MLflow side of the ensemble: its members from the registry, the registered pyfunc that takes raw
photos, and the probabilities of a registered member set (for the submission and for re-scoring a champion)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

import maskops
from maskops.crop import CropRecipe, CropRecipeError
from maskops.data import decode_all
from maskops.ensemble import EnsembleConfig, EnsembleEvaluation, Serving, evaluate_ensemble, member_probabilities, soft_vote
from maskops.files import file_digest
from maskops.metrics import evaluate
from maskops.variants import model_name
from tracking.models import logged_model, registered_name
from tracking.registry import MEMBERS_TAG
from tracking.service import TrackedRun, TrackingService, dagster_run_markdown, pinned

ENSEMBLE_NAME = "maskops-ensemble"
ENSEMBLE_DESCRIPTION = (
    "The served face-attribute model: a pyfunc that takes raw photos (image paths), crops the face with the members' crop "
    "recipe and soft-votes the registered variant models (maskops-raw, -relabeled, -cleaned, -generated) into 18 classes "
    "(mask state x gender x age group). Alias **champion** is the version served (`models:/maskops-ensemble@champion`), "
    "**challenger** the last version that did not beat it on the same validation people. Made by the Dagster asset `ensemble`."
)
MODEL_CODE = Path(__file__).with_name("ensemble_model.py")
MASKOPS_CODE = Path(maskops.__file__).resolve().parent  # bundled with the model: it loads where maskops is not installed
# what the bundled maskops code and the model file import, at the versions they were tested with
REQUIREMENTS = (
    "torch",
    "timm",
    "safetensors",
    "mlflow",
    "facenet-pytorch",
    "onnxruntime",
    "rembg",
    "pillow",
    "numpy",
    "pandas",
    "universal-pathlib",
)


class MemberError(ValueError):
    """A member cannot go into the ensemble; the message says which and what to do."""


def registered_members(service: TrackingService, records: Sequence[dict]) -> list[dict]:
    """Each member's registered version (only models that passed model_quality are registered)."""
    members = []
    for r in records:
        version = service.version_of(registered_name(r["variant"]), logged_model(r))
        if version is None:
            raise MemberError(
                f"{model_name(r['variant'])} (run {r['run_id']}) is not in the registry: only a model that passed its model_quality check "
                f"is registered. Run the check (materialize {model_name(r['variant'])} with its checks) or retrain it"
            )
        members.append({"variant": r["variant"], "artifact": f"member_{r['variant']}", "image_size": int(r["image_size"]),
                        "model_uri": f"models:/{registered_name(r['variant'])}/{version}"})  # fmt: skip
    return members


def probabilities(service: TrackingService, members: Sequence[dict], paths: list[str], open_image: Callable[[str], Image.Image],
                  tta: bool) -> list[np.ndarray]:  # fmt: skip
    """Every member's (N, 18) probabilities on crops at its own input size."""
    return [
        member_probabilities(service.load_pytorch(m["model_uri"]), decode_all(paths, open_image, int(m["image_size"])), tta)
        for m in members
    ]


def voted(service: TrackingService, spec: dict, paths: list[str], open_image: Callable[[str], Image.Image]) -> np.ndarray:
    """The soft vote of a registered member set (`spec`: members, weights, tta, temperatures — 1.0 each when a version
    registered before temperatures existed has none)."""
    return soft_vote(probabilities(service, spec["members"], paths, open_image, spec["tta"]), spec["weights"], spec.get("temperatures"))


def rescore(service: TrackingService, champion_tags: dict, paths: list[str], y_true: np.ndarray,
            open_image: Callable[[str], Image.Image], groups: Sequence[str] | None = None) -> float:  # fmt: skip
    """The champion's validation macro F1 measured again, on the current validation people. A champion whose weights
    or temperatures were fitted is scored as the challenger is, refitted cross-fitted on the people `groups`: its own
    values may have been fitted on these very people (when only a label changed), which favoured it."""
    spec = json.loads(champion_tags[MEMBERS_TAG])
    weights, temperatures = spec["weights"], spec.get("temperatures") or [1.0] * len(spec["weights"])
    fitted_weights = max(weights) - min(weights) > 1e-9
    fitted_temperatures = any(abs(t - 1.0) > 1e-9 for t in temperatures)
    if groups is None or not (fitted_weights or fitted_temperatures):
        return evaluate(y_true, voted(service, spec, paths, open_image))["macro_f1"]
    members = probabilities(service, spec["members"], paths, open_image, spec["tta"])
    evaluation = evaluate_ensemble([model_name(m["variant"]) for m in spec["members"]], members, y_true,
                                   "fitted" if fitted_weights else "equal", groups=groups, temperature=fitted_temperatures)  # fmt: skip
    return float(evaluation.ensemble_metrics["macro_f1"])


def member_artifacts(service: TrackingService, members: Sequence[dict], folder: Path) -> dict[str, str]:
    """Each member's files for the ensemble pyfunc, downloaded under `folder`: its safetensors weights when it has them
    (maskops.models.WEIGHTS_FILE: rebuilt from timm in ~0.05 s), else — a member logged before — its pt2 graph."""
    from maskops.models import WEIGHTS_FILE

    artifacts = {}
    for member in members:
        local = service.download(member["model_uri"], folder / member["artifact"])
        if (local / WEIGHTS_FILE).is_file():  # stored as <artifact>.safetensors: one name per member in the pyfunc
            local = Path(shutil.copyfile(local / WEIGHTS_FILE, folder / f"{member['artifact']}.safetensors"))
        artifacts[member["artifact"]] = str(local)
    return artifacts


def signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema

    outputs = [ColSpec(DataType.string, "status"), ColSpec(DataType.long, "class_id", required=False), ColSpec(DataType.string, "mask", required=False),
               ColSpec(DataType.string, "gender", required=False), ColSpec(DataType.string, "age_group", required=False),
               ColSpec(DataType.double, "confidence", required=False)]  # fmt: skip
    outputs += [ColSpec(DataType.double, f"p_{i}", required=False) for i in range(18)]
    return ModelSignature(inputs=Schema([ColSpec(DataType.string, "image")]), outputs=Schema(outputs))


def log_ensemble(run: TrackedRun, evaluation: EnsembleEvaluation, members: list[dict], recipe: CropRecipe,
                 background_file: Path | None, config: EnsembleConfig, serving: Serving, photo_side: int | None = None) -> tuple[str, dict]:  # fmt: skip
    """Evaluation artifacts (every member and the soft vote), then the pyfunc of what `serving` chose (the members it
    names, background model, maskops code, the training photos' longer side `photo_side`, to which it shrinks larger
    photos before cropping) registered as maskops-ensemble. Returns the version and the member spec."""
    if recipe.config.remove_background and (background_file is None or file_digest(background_file) != recipe.background_sha256):
        raise CropRecipeError(
            f"{background_file} is not the background model the members' crops were made with (sha256 {recipe.background_sha256[:12]}...); "
            "configure the background remover with that file, or re-crop and retrain"
        )
    candidates, members = members, [members[i] for i in serving.members]
    spec = {"members": members, "weights": serving.weights, "tta": config.tta, "temperatures": serving.temperatures}
    run.log_params({"weights": json.dumps([round(w, 4) for w in serving.weights]), "tta": config.tta,
                    "temperatures": json.dumps([round(t, 4) for t in serving.temperatures]), "scoring": evaluation.scoring[:250],
                    "member_models": json.dumps([m["model_uri"] for m in members]),
                    "candidate_models": json.dumps([m["model_uri"] for m in candidates])})  # fmt: skip
    run.client.set_tag(run.run_id, "maskops.serving", serving.reason)
    run.log_metrics({"served_val_macro_f1": serving.score})
    run.log_metrics({f"val_{k}": v for k, v in evaluation.ensemble_metrics.items()})
    run.log_metrics({f"{m['model']}_val_macro_f1": m["macro_f1"] for m in evaluation.member_metrics})
    for r in evaluation.calibration.itertuples():
        run.log_metrics({f"{r.model}_val_ece": r.ece, f"{r.model}_val_ece_scaled": r.ece_scaled})
    run.log_files({**evaluation.figures, **evaluation.tables()}, "evaluation")
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = member_artifacts(run.service, members, Path(tmp))
        model_config = {**spec, "crop_recipe": recipe.to_json(), "background_model_name": recipe.config.background_model}
        if photo_side:
            model_config["photo_side"] = photo_side
        if background_file is not None:
            artifacts["background_model"] = str(background_file)
        logged = run.log_pyfunc_model(
            "ensemble", MODEL_CODE, artifacts, model_config, signature(), [str(MASKOPS_CODE)], pinned(*REQUIREMENTS)
        )
    what = f"Soft vote of {', '.join(m['model_uri'] for m in members)}" if serving.earned else f"{members[0]['model_uri']} alone"
    dagster_run = run.service.dagster_run_link(run.run_id)
    made = f" Made by Dagster run {dagster_run_markdown(dagster_run)}." if dagster_run else ""
    description = f"{what}: validation macro F1 {serving.score:.4f}. {serving.reason.rstrip('.')}. MLflow run {run.run_id}.{made}"
    version = run.service.register(ENSEMBLE_NAME, logged, tags={MEMBERS_TAG: json.dumps(spec)}, description=description,
                                   model_description=ENSEMBLE_DESCRIPTION)  # fmt: skip
    return version, spec
