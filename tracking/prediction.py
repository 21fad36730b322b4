"""Batch prediction with a registered model, for `maskops predict`."""

import contextlib
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from mlflow.exceptions import MlflowException

from tracking.service import TrackingService

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


class PredictionError(ValueError):
    """The model or the inputs cannot be used; the message says which and what to do."""


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded to the image files in them (sorted); raises for empty folders and missing paths."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
            if not found:
                raise PredictionError(
                    f"{path} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))}); pass image files or a folder with images"
                )
            files.extend(found)
        elif path.exists():
            files.append(path)  # whatever it is, the model reports it if it is not an image
        else:
            raise PredictionError(f"{path} does not exist; pass image files or folders")
    if not files:
        raise PredictionError("no inputs: pass image files or folders")
    return files


def load_model(service: TrackingService, model_uri: str):
    """The pyfunc model at `model_uri`, with a clear error for unknown names, versions or aliases."""
    try:
        return service.load_pyfunc(model_uri)
    except MlflowException as exc:
        known = ""
        with contextlib.suppress(MlflowException):
            known = f"; registered models: {', '.join(service.registered_model_names()) or 'none'}"
        raise PredictionError(
            f"cannot load {model_uri} from {service.tracking_uri} ({str(exc).splitlines()[0][:200]}){known}. "
            "Use models:/NAME/VERSION or models:/NAME@ALIAS, and point MLFLOW_TRACKING_URI (or MASKOPS_HOME) at the right store"
        ) from None


def predict_files(model, files: list[Path], batch_size: int = 32, progress=None) -> pd.DataFrame:
    """One output row per input file, in order, with its path first."""
    parts = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        out = model.predict(pd.DataFrame({"image": [str(p) for p in chunk]}))
        parts.append(out.assign(path=[str(p) for p in chunk]))
        if progress is not None:
            progress(len(chunk))
    result = pd.concat(parts, ignore_index=True)
    return result[["path", *[c for c in result.columns if c != "path"]]]
