"""The registered ensemble: an MLflow pyfunc model defined from code (this file), not a pickled object.

Input: a DataFrame with a column `image` holding file paths or encoded image bytes.
Output: one row per input — `status` ("ok", or why the row has no prediction), `class_id`,
`mask`, `gender`, `age_group`, `confidence` (the probability of `class_id`) and the 18
probabilities `p_0` .. `p_17` of the soft vote (each member temperature-scaled when the version was fitted so). Every photo goes
through the same crop pipeline the members were trained on (background removal and face
crop with the recorded parameters, stored as JPEG like the training crops), then each member's
own input size, then soft voting.
"""

import io
from pathlib import Path

import mlflow
import pandas as pd
from PIL import Image

from maskops.background import BackgroundRemover
from maskops.crop import CropRecipe, crop_batch
from maskops.data import decode_all
from maskops.ensemble import member_probabilities, soft_vote
from maskops.faces import FaceDetector
from maskops.labels import NUM_CLASSES, AgeGroup, Gender, MaskState
from maskops.store import encode_jpeg

PROBABILITY_COLUMNS = [f"p_{i}" for i in range(NUM_CLASSES)]
OUTPUT_COLUMNS = ["status", "class_id", "mask", "gender", "age_group", "confidence", *PROBABILITY_COLUMNS]
BATCH = 16


def _open(value) -> Image.Image:
    if isinstance(value, bytes | bytearray | memoryview):
        return Image.open(io.BytesIO(bytes(value))).convert("RGB")
    if isinstance(value, str | Path):
        return Image.open(value).convert("RGB")
    raise TypeError(f"expected a file path or image bytes, got {type(value).__name__}")


class MaskopsEnsemble(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        import mlflow.pytorch

        config = context.model_config
        self.members = [
            (m["image_size"], mlflow.pytorch.load_model(context.artifacts[m["artifact"]], map_location="cpu")) for m in config["members"]
        ]
        self.weights = config["weights"]
        self.temperatures = config.get("temperatures")  # none: a version registered before temperature scaling
        self.tta = bool(config.get("tta", False))
        recipe = CropRecipe.from_json(config["crop_recipe"])  # exactly how the members' training crops were made
        self.crop = recipe.config
        self.remover = None
        if self.crop.remove_background:
            model_file = Path(context.artifacts["background_model"])
            custom = config.get("background_model_name") == "u2net_custom"
            self.remover = BackgroundRemover(model_file.parent, model=config.get("background_model_name", "u2netp"),
                                             model_path=model_file if custom else None, color=self.crop.background_color,
                                             resolution=self.crop.background_resolution)  # fmt: skip
        self.detector = FaceDetector(recipe.detector) if self.crop.crop_face else None

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if "image" not in model_input.columns:
            raise ValueError(f"the input needs a column 'image' (file paths or image bytes); got columns {list(model_input.columns)}")
        rows: list[dict] = [{"status": "ok"} for _ in range(len(model_input))]
        pictures: dict[int, Image.Image] = {}
        for i, value in enumerate(model_input["image"]):
            try:
                pictures[i] = _open(value)
            except Exception as exc:  # unreadable files are reported, never dropped
                rows[i]["status"] = f"unreadable image: {type(exc).__name__}: {str(exc)[:120]}"
        order = sorted(pictures)
        for start in range(0, len(order), BATCH):
            chunk = order[start : start + BATCH]
            crops, _ = crop_batch([pictures[i] for i in chunk], self.crop, self.remover, self.detector)
            # The members were trained on crops stored as JPEG: serve them the same pixels.
            crops = [Image.open(io.BytesIO(encode_jpeg(c, self.crop.jpeg_quality))) for c in crops]
            probs = [member_probabilities(model, decode_all(crops, lambda c: c, size), self.tta) for size, model in self.members]
            voted = soft_vote(probs, self.weights, self.temperatures)
            for i, p in zip(chunk, voted, strict=True):
                class_id = int(p.argmax())
                rows[i] |= {
                    "class_id": class_id, "mask": MaskState(class_id // 6).name.lower(), "gender": Gender((class_id // 3) % 2).name.lower(),
                    "age_group": AgeGroup(class_id % 3).name.lower(), "confidence": float(p[class_id]), **dict(zip(PROBABILITY_COLUMNS, p.astype(float), strict=True)),
                }  # fmt: skip
        out = pd.DataFrame(rows).reindex(columns=OUTPUT_COLUMNS)
        out["class_id"] = out["class_id"].astype("Int64")
        return out


mlflow.models.set_model(MaskopsEnsemble())
