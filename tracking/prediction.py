"""Batch prediction with a registered model, for `maskops predict` and `maskops serve`."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from mlflow.exceptions import MlflowException

from maskops.labels import AGE_WORDS_BY_NAME as AGE_WORDS
from maskops.pixels import IMAGE_EXTENSIONS
from tracking.relocate import local_folder
from tracking.service import TrackingService


class PredictionError(ValueError):
    """The model or the inputs cannot be used; the message says which and what to do."""


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded to the image files in them (sorted); raises for empty folders and missing paths."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
            )
            if not found:
                raise PredictionError(
                    f"{path} holds no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}); pass image files or a folder with images"
                )
            files.extend(found)
        elif path.exists():
            files.append(path)  # whatever it is, it keeps a row: `predict_files` says why it has no prediction
        else:
            raise PredictionError(f"{path} does not exist; pass image files or folders")
    if not files:
        raise PredictionError("no inputs: pass image files or folders")
    return files


def load_model(service: TrackingService, model_uri: str, models_dir: Path | None = None):
    """The model at `model_uri` as something with `predict(DataFrame of images)`: a pyfunc that takes photos (the
    ensemble), or a member model wrapped in the crop pipeline it was trained on (its background model from
    `models_dir`). Files in a local store are read where they are, not copied. Clear errors for unknown names,
    versions or aliases, and for models that take neither."""
    if ":" not in model_uri and not Path(model_uri).exists():  # a bare name (maskops-ensemble) or a mistyped folder
        raise PredictionError(
            f"{model_uri} is neither a model URI nor a model folder on disk: name a registered model as models:/NAME@ALIAS "
            "or models:/NAME/VERSION (e.g. models:/maskops-ensemble@champion), a run's as runs:/RUN_ID/PATH, or give a folder"
        )
    import mlflow.pyfunc
    from mlflow.models import Model

    try:
        location = service.storage_location(model_uri)
    except MlflowException as exc:
        if exc.error_code not in NOT_FOUND:  # the store did not answer (a server down, a network error)
            raise PredictionError(
                f"cannot read {model_uri} from {service.tracking_uri}: the store did not answer ({first_line(exc)}). "
                "Check that the tracking server runs and MLFLOW_TRACKING_URI names it"
            ) from None
        known = ""
        with contextlib.suppress(MlflowException):
            known = f"; registered models: {', '.join(service.registered_model_names()) or 'none'}"
        raise PredictionError(
            f"cannot load {model_uri} from {service.tracking_uri} ({first_line(exc)}){known}. "
            "Use models:/NAME/VERSION or models:/NAME@ALIAS, and point MLFLOW_TRACKING_URI (or MASKOPS_HOME) at the right store"
        ) from None
    local = _local_folder(location)
    try:
        if local is None:  # a remote store: download once, into a folder that lives as long as the process
            return service.load_pyfunc(model_uri)
        model = Model.load(str(local))
        if model.flavors.get("python_function", {}).get("loader_module") == "mlflow.pytorch":
            return _member_predictor(local, model.metadata or {}, model_uri, models_dir)
        return mlflow.pyfunc.load_model(str(local), suppress_warnings=True)  # the requirement scan alone took 1-3 s
    except PredictionError:
        raise
    except Exception as exc:  # named in one line, not a traceback
        what = f"{type(exc).__name__}: {first_line(exc)}"
        if local is not None and (isinstance(exc, OSError | EOFError | ValueError | KeyError) or type(exc).__name__ == "SafetensorError"):
            raise PredictionError(  # a file missing or cut short in its artifacts (a half copy, a full disk)
                f"cannot load {model_uri}: its files at {local} are missing or damaged ({what}). "
                "Load another version (models:/NAME/VERSION), or register it again by materializing its asset"
            ) from None
        raise PredictionError(f"cannot load {model_uri} from {local or location} ({what})") from None  # the environment, a download


NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}  # MLflow's codes for a name, version or alias


def first_line(exc: BaseException) -> str:
    """The part of an error message a person needs: its first line, or what a failed HTTP request was caused by."""
    text = str(exc)
    cause = text.find("(Caused by ")
    return (text[cause + 1 :] if cause >= 0 else (text.splitlines() or [""])[0])[:200]


def _local_folder(location: str) -> Path | None:
    folder = local_folder(location)
    return folder if folder is not None and folder.is_dir() else None


def _member_predictor(local: Path, metadata: dict, model_uri: str, models_dir: Path | None):
    """One member served like the ensemble: the same crop pipeline (from the recipe in its metadata), one vote."""

    from maskops.crop import CropRecipe
    from maskops.files import file_digest
    from tracking.ensemble_model import MaskopsEnsemble
    from tracking.service import load_logged_module

    if "crop_recipe" not in metadata or "image_size" not in metadata:
        raise PredictionError(
            f"{model_uri} is a PyTorch model without a crop recipe in its metadata: it takes prepared crops, not photos. "
            "Use a version of maskops-ensemble (models:/maskops-ensemble@champion), or a member registered by this maskops"
        )
    recipe = CropRecipe.from_json(metadata["crop_recipe"])
    background = None
    if recipe.config.remove_background:
        found = [p for p in sorted(Path(models_dir).glob("*.onnx")) if file_digest(p) == recipe.background_sha256] if models_dir else []
        if not found:
            raise PredictionError(
                f"{model_uri} was trained on crops whose background was removed with a model of sha256 {recipe.background_sha256[:12]}..., "
                f"which is not in {models_dir} (MASKOPS_MODELS): run `maskops fetch-models`, or predict with maskops-ensemble, "
                "which carries its background model"
            )
        background = found[0]
    config = {"weights": [1.0], "temperatures": [1.0], "tta": False, "crop_recipe": metadata["crop_recipe"],
              "background_model_name": recipe.config.background_model}  # fmt: skip
    member = load_logged_module(local)
    return PhotoModel(MaskopsEnsemble().setup(config, [(int(metadata["image_size"]), member)], background))


class PhotoModel:
    """A MaskopsEnsemble used outside MLflow's pyfunc wrapper, with the pyfunc's interface."""

    def __init__(self, ensemble):
        self._ensemble = ensemble

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self._ensemble.predict(None, frame)

    def unwrap_python_model(self):
        return self._ensemble

    @property
    def output_columns(self) -> list[str]:
        from tracking.ensemble_model import OUTPUT_COLUMNS

        return list(OUTPUT_COLUMNS)


def predict_files(model, files: list[Path], batch_size: int = 32, progress=None) -> pd.DataFrame:
    """One output row per input file, in order, with its path first. Anything but a regular file (a FIFO would block
    the reader, a device never ends) gets a status and never reaches the model; a batch the model fails on is retried
    file by file, so a failure stays with its file."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    rows = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        regular = [p for p in chunk if _is_regular(p)]
        answers = _predict_each(model, regular)
        rows += [answers.get(p) or {"status": "not a regular file"} for p in chunk]
        if progress is not None:
            progress(len(chunk))
    result = pd.DataFrame(rows)
    result.insert(0, "path", [str(p) for p in files])
    if "class_id" in result.columns:
        result["class_id"] = result["class_id"].astype("Int64")
    return result


def _predict_each(model, files: list[Path]) -> dict[Path, dict]:
    if not files:
        return {}
    try:
        return dict(zip(files, _predict(model, files), strict=True))
    except Exception:  # a model that raises for a whole batch: find the file it fails on
        answers = {}
        for path in files:
            try:
                answers[path] = _predict(model, [path])[0]
            except Exception as exc:
                answers[path] = {"status": f"prediction failed: {type(exc).__name__}: {str(exc)[:160]}"}
        return answers


def _predict(model, files: list[Path]) -> list[dict]:
    return model.predict(pd.DataFrame({"image": [str(p) for p in files]})).to_dict("records")


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def summary(result: pd.DataFrame, show: int = 5) -> str:
    """A table for the terminal: photos per predicted class, then the `show` least confident predictions."""
    lines = []
    ok = result[result["status"] == "ok"]
    ok = ok.assign(age_group=ok["age_group"].map(lambda g: AGE_WORDS.get(str(g), g))) if "age_group" in ok else ok
    if not ok.empty:
        counts = ok.groupby(["mask", "gender", "age_group"]).size().rename("photos").reset_index()
        counts = counts.sort_values("photos", ascending=False, kind="stable")
        lines += ["photos per predicted class:", counts.to_string(index=False), ""]
        if "confidence" in ok.columns and show > 0:
            low = ok.nsmallest(show, "confidence")[["path", "class_id", "mask", "gender", "age_group", "confidence"]]
            lines += [f"least confident ({len(low)} of {len(ok)}):", low.to_string(index=False, float_format=lambda v: f"{v:.3f}"), ""]
    return "\n".join(lines).rstrip()
