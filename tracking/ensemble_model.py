"""The registered ensemble: an MLflow pyfunc model defined from code (this file), not a pickled object.

Input: a DataFrame with a column `image` holding file paths (regular files only) or encoded image bytes, each
checked against `maskops.intake` limits (bytes, and pixels read from the header) before it is decoded.
Output: one row per input — `status` ("ok", or why the row has no prediction), `class_id`,
`mask`, `gender`, `age_group`, `confidence` (the probability of `class_id`) and the 18
probabilities `p_0` .. `p_17` of the soft vote (each member temperature-scaled when the version was fitted so). Every photo goes
through the same crop pipeline the members were trained on (background removal and face
crop with the recorded parameters, stored as JPEG like the training crops), then each member's
own input size, then soft voting. A photo that fails anywhere on the way gets its reason in `status`; the others
of its batch keep their predictions.
"""

import contextlib
import io
import typing
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from PIL import Image

from maskops.crop import CropRecipe, at_training_scale, crop_batch
from maskops.data import decode_all
from maskops.ensemble import member_probabilities, soft_vote
from maskops.intake import IntakeError, IntakeLimits, open_photo
from maskops.labels import NUM_CLASSES, AgeGroup, Gender, MaskState
from maskops.store import encode_jpeg

PROBABILITY_COLUMNS = [f"p_{i}" for i in range(NUM_CLASSES)]
OUTPUT_COLUMNS = ["status", "class_id", "mask", "gender", "age_group", "confidence", *PROBABILITY_COLUMNS]
BATCH = 16


@contextlib.contextmanager
def type_hints_cached() -> Iterator[None]:
    """typing.get_type_hints memoised while the members load: torch.export's deserializer asks it ~10,000 times per
    member for the same few schema classes, 60% of a member's load time (1.4 s -> 0.55 s for EfficientNet-Lite0)."""
    original = typing.get_type_hints
    cache: dict = {}

    def get_type_hints(obj, globalns=None, localns=None, include_extras=False):
        key = (obj, id(globalns), include_extras)
        try:
            hit = None if localns is not None else cache.get(key)
        except TypeError:  # an unhashable object: not cached
            return original(obj, globalns, localns, include_extras)
        if hit is None:
            hit = (globalns, original(obj, globalns, localns, include_extras))  # holding globalns keeps its id unique
            if localns is None:
                cache[key] = hit
        return dict(hit[1])

    typing.get_type_hints = get_type_hints
    try:
        yield
    finally:
        typing.get_type_hints = original


def load_member(path: str):
    """A member as the ensemble stored it: safetensors weights of a timm architecture (maskops.models.save_weights:
    rebuilt, never unpickled), or — a member logged before members had them — its pt2 graph."""
    if str(path).endswith(".safetensors"):
        from maskops.models import load_weights

        return load_weights(path)
    import mlflow.pytorch

    return mlflow.pytorch.load_model(path, map_location="cpu")


class MaskopsEnsemble(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        config = context.model_config
        with type_hints_cached():
            members = [(m["image_size"], load_member(context.artifacts[m["artifact"]])) for m in config["members"]]
        self.setup(config, members, context.artifacts.get("background_model"))

    def setup(self, config: dict, members: list, background_file: str | Path | None) -> "MaskopsEnsemble":
        """Ready to predict with loaded `members` ((image_size, module) pairs) and the crop pipeline of `config`."""
        self.members = members
        self.weights = config["weights"]
        self.temperatures = config.get("temperatures")  # none: a version registered before temperature scaling
        self.tta = bool(config.get("tta", False))
        self.limits = IntakeLimits()  # a server may set its own
        self.photo_side = config.get("photo_side")  # none: a version registered before it was recorded (photos as they come)
        recipe = CropRecipe.from_json(config["crop_recipe"])  # exactly how the members' training crops were made
        self.crop = recipe.config
        self.remover = None
        if self.crop.remove_background:
            from maskops.background import BackgroundRemover

            model_file = Path(background_file)
            custom = config.get("background_model_name") == "u2net_custom"
            self.remover = BackgroundRemover(model_file.parent, model=config.get("background_model_name", "u2netp"),
                                             model_path=model_file if custom else None, color=self.crop.background_color,
                                             resolution=self.crop.background_resolution)  # fmt: skip
        self.detector = None
        if self.crop.crop_face:
            from maskops.faces import FaceDetector

            self.detector = FaceDetector(recipe.detector)
        return self

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if "image" not in model_input.columns:
            raise ValueError(f"the input needs a column 'image' (file paths or image bytes); got columns {list(model_input.columns)}")
        rows: list[dict] = [{"status": "ok"} for _ in range(len(model_input))]
        pictures: dict[int, Image.Image] = {}
        for i, value in enumerate(model_input["image"]):
            try:
                picture = open_photo(value, self.limits)  # regular files only, pixel limit before decoding
                pictures[i] = at_training_scale(picture, self.photo_side)  # the crop margin is in the training photos' pixels
            except IntakeError as exc:  # unreadable inputs are reported, never dropped
                rows[i]["status"] = str(exc)
        order = sorted(pictures)
        for start in range(0, len(order), BATCH):
            chunk = order[start : start + BATCH]
            for i, p in zip(chunk, self._vote_each([pictures[i] for i in chunk]), strict=True):
                if isinstance(p, str):
                    rows[i]["status"] = p
                    continue
                class_id = int(p.argmax())
                rows[i] |= {
                    "class_id": class_id, "mask": MaskState(class_id // 6).name.lower(), "gender": Gender((class_id // 3) % 2).name.lower(),
                    "age_group": AgeGroup(class_id % 3).name.lower(), "confidence": float(p[class_id]), **dict(zip(PROBABILITY_COLUMNS, p.astype(float), strict=True)),
                }  # fmt: skip
        out = pd.DataFrame(rows, index=model_input.index).reindex(columns=OUTPUT_COLUMNS)  # answers join back on the index
        out["class_id"] = out["class_id"].astype("Int64")
        return out

    def _vote_each(self, pictures: list[Image.Image]) -> list[np.ndarray | str]:
        """Each picture's 18 probabilities, or why it has none: when the batch fails, each image is tried alone, so one
        bad image never costs its neighbours their predictions."""
        try:
            voted = list(self._vote(pictures))
        except Exception:
            voted = []
            for picture in pictures:
                try:
                    voted.append(self._vote([picture])[0])
                except Exception as exc:
                    voted.append(f"prediction failed: {type(exc).__name__}: {str(exc)[:160]}")
        return [p if isinstance(p, str) or np.isfinite(p).all() else "prediction failed: non-finite probabilities" for p in voted]

    def crops(self, pictures: list[Image.Image]) -> list[Image.Image]:
        """What the members are shown of `pictures`: the crop pipeline of their training crops, and the same JPEG
        round trip (the members were trained on crops stored as JPEG: serve them the same pixels)."""
        crops, _ = crop_batch(pictures, self.crop, self.remover, self.detector)
        return [Image.open(io.BytesIO(encode_jpeg(c, self.crop.jpeg_quality))) for c in crops]

    def _vote(self, pictures: list[Image.Image]) -> np.ndarray:
        crops = self.crops(pictures)
        probs = [member_probabilities(model, decode_all(crops, lambda c: c, size), self.tta) for size, model in self.members]
        return soft_vote(probs, self.weights, self.temperatures)


mlflow.models.set_model(MaskopsEnsemble())
