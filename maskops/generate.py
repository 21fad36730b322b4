"""Generated people that balance the rare age groups, like MaskTheFace in the original.

From the `normal` (unmasked) photo of a training profile, MTCNN finds the face and its
five landmarks and the mask painter draws five worn masks, one incorrectly worn mask
(below the nose or on the chin) and keeps one unmasked photo: a new 7-image profile
derived from that training profile only. Targets follow the original: stage 1 tops every
age group up to the largest; stage 2 to twice the largest.

Age transformation (the original used SAM, a StyleGAN model that cannot be obtained
offline) is an extension point: an image-to-image ONNX model (float32 RGB in 0..1,
NCHW, same shape out) applied to the source photo before masking, turning people of
other age groups into the group it is declared to produce.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from PIL import Image

from maskops.corrections import LABEL_COLUMNS
from maskops.faces import DetectorConfig, FaceDetector
from maskops.files import file_digest
from maskops.labels import PROFILE_STEMS, STEM_MASK, AgeGroup, MaskState, encode
from maskops.options import key_params, option
from maskops.store import ImageStore, StoreWork, derive_key, encode_jpeg
from maskops.synth.masks import INCORRECT_PLACEMENTS, Placement, paint_mask, random_style

GENERATE_CODE_VERSION = "3"  # 3: source photos turned upright by their EXIF orientation (maskops.pixels)
GENERATOR = "maskpaint/1"
GENERATED_COLUMNS = (
    "image_id", "profile_id", "person_id", "stem", "mask", "gender", "race", "age", "age_group", "class_id", "path",
    "content_hash", "width", "height", "readable", "source_profile_id", "source_image_id", "generator", "generator_params",
)  # fmt: skip


@dataclass(frozen=True)
class GenerateConfig:
    stage: int = option(1, "1: top every age group up to the largest; 2: up to twice the largest.")
    seed: int = option(0, "Seed of the plan and of the painted masks.")
    min_face_prob: float = option(0.9, "Sources whose face MTCNN finds with less confidence are skipped.")
    # the file's content, not its path, goes into the cache key (see generation_key_params)
    age_model_path: str | None = option(None, "Image-to-image ONNX applied before masking (off when empty).", in_key=False)
    age_model_group: int = option(int(AgeGroup.OLD), "Age group the age model produces (0 <30, 1 30-59, 2 >=60).")
    age_model_age: int = option(65, "Age recorded for the people the age model produces.")
    jpeg_quality: int = option(95, "JPEG quality of the generated images.")

    def __post_init__(self) -> None:
        if self.stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {self.stage}")
        if self.age_model_path == "":
            object.__setattr__(self, "age_model_path", None)


def generation_key_params(config: GenerateConfig, detector: DetectorConfig, age_model: AgeModel | None) -> dict:
    """Everything that changes a generated image: the settings, MTCNN's (it places the masks) and the age model's content."""
    return {**key_params(config), "detector": key_params(detector), "age_model_sha256": age_model.sha256 if age_model else None}


class AgeModel:
    """An image-to-image ONNX model: float32 RGB 0..1, (1, 3, H, W) in and out."""

    def __init__(self, path: str, threads: int = 0):
        import onnxruntime as ort

        self.sha256 = file_digest(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        self.session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, image: Image.Image) -> Image.Image:
        x = np.asarray(image.convert("RGB"), dtype=np.float32).transpose(2, 0, 1)[None] / 255.0
        (y,) = self.session.run(None, {self.input: x})[:1]
        if y.shape != x.shape:
            raise ValueError(f"age model returned shape {y.shape} for input {x.shape}; it must map an image to an image of the same size")
        return Image.fromarray((np.clip(y[0].transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8))


def _rank(seed: int, profile_id: str) -> str:
    return hashlib.sha256(f"{seed}/{profile_id}".encode()).hexdigest()


def plan_generation(profiles: pd.DataFrame, config: GenerateConfig) -> pd.DataFrame:
    """Which new profiles to make: one row per generated person, with its source training profile.

    `profiles`: one row per training profile with profile_id, gender, race, age, age_group.
    Each source gets an (almost) equal number of copies, in a seeded order that does not
    depend on the other profiles, so adding data keeps earlier generated people (and their
    images in the store) as they were.
    """
    counts = profiles["age_group"].value_counts().reindex(list(AgeGroup), fill_value=0)
    target = int(counts.max()) * config.stage
    rows = []
    for group in AgeGroup:
        deficit = target - int(counts[group])
        aged = config.age_model_path is not None and group == config.age_model_group
        pool = profiles[profiles["age_group"] != group] if aged else profiles[profiles["age_group"] == group]
        if deficit <= 0 or pool.empty:
            continue
        pool = pool.assign(_rank=[_rank(config.seed, p) for p in pool["profile_id"]]).sort_values("_rank")
        base, extra = divmod(deficit, len(pool))
        for rank, src in enumerate(pool.itertuples()):
            for copy in range(base + (rank < extra)):
                rows.append({
                    "profile_id": f"gen{config.stage}-{copy + 1}-{src.profile_id}", "copy": copy,
                    "source_profile_id": src.profile_id, "age_group": int(group), "gender": int(src.gender),
                    "race": src.race, "age": config.age_model_age if aged else int(src.age), "aged": aged,
                })  # fmt: skip
    columns = ["profile_id", "copy", "source_profile_id", "age_group", "gender", "race", "age", "aged"]
    return pd.DataFrame(rows, columns=columns).sort_values("profile_id", ignore_index=True)


@dataclass
class GenerateStats(StoreWork):
    """Profiles planned and made, sources skipped for want of a face, and the generated people's images."""

    planned_profiles: int = 0
    generated_profiles: int = 0
    skipped_no_face: int = 0
    images: int = 0


def generate(
    plan: pd.DataFrame,
    sources: pd.DataFrame,
    open_image: Callable[[str], Image.Image],
    store: ImageStore,
    detector: FaceDetector,
    config: GenerateConfig,
    age_model: AgeModel | None = None,
    detector_config: DetectorConfig | None = None,
) -> tuple[pd.DataFrame, GenerateStats]:
    """Draw the planned profiles; `sources` maps source_profile_id to its normal image (image_id, path, content_hash).
    `detector_config` is the detector's settings (given apart, so a lazily built detector is only built when needed)."""
    stats = GenerateStats(planned_profiles=len(plan))
    by_profile = sources.set_index("source_profile_id")
    params = generation_key_params(config, detector_config or DetectorConfig(), age_model)
    prepared: dict[tuple[str, bool], tuple[Image.Image, np.ndarray] | None] = {}

    def source_face(profile_id: str, aged: bool):
        if (profile_id, aged) not in prepared:
            image = open_image(by_profile.loc[profile_id, "path"])
            if aged:
                if age_model is None:
                    raise ValueError("the plan asks for aged people but no age model was given")
                image = age_model(image)
            face = detector.detect([image])[0]
            ok = face is not None and face.prob >= config.min_face_prob
            prepared[(profile_id, aged)] = (image, face.landmarks) if ok else None
        return prepared[(profile_id, aged)]

    rows = []
    for person in plan.itertuples():
        src = by_profile.loc[person.source_profile_id]
        keys = _output_keys(src["content_hash"], person, params)
        missing = [s for s in PROFILE_STEMS if not store.has(keys[s])]
        if missing:
            prepared_face = source_face(person.source_profile_id, bool(person.aged))
            if prepared_face is None:
                stats.skipped_no_face += 1
                continue
            image, landmarks = prepared_face
            rng = np.random.default_rng(int(_rank(config.seed, person.profile_id)[:16], 16))
            for stem in PROFILE_STEMS:
                picture, record = _paint(image, landmarks, STEM_MASK[stem], rng)
                if stem in missing:
                    data = encode_jpeg(picture, config.jpeg_quality)
                    store.put(keys[stem], data, record | {"content_hash": hashlib.sha256(data).hexdigest()})
        stats.reused += 7 - len(missing)
        stats.processed += len(missing)
        stats.generated_profiles += 1
        for stem in PROFILE_STEMS:
            mask = STEM_MASK[stem]
            record = store.record(keys[stem])
            rows.append({
                "image_id": f"{person.profile_id}/{stem}", "profile_id": person.profile_id, "person_id": "", "stem": stem,
                "mask": int(mask), "gender": int(person.gender), "race": person.race, "age": int(person.age),
                "age_group": int(person.age_group), "class_id": encode(mask, person.gender, person.age_group),
                "path": store.uri(keys[stem]), "content_hash": record["content_hash"], "width": record["width"], "height": record["height"],
                "readable": True, "source_profile_id": person.source_profile_id, "source_image_id": src["image_id"],
                "generator": GENERATOR + ("+age" if person.aged else ""), "generator_params": json.dumps(record["params"], sort_keys=True),
            })  # fmt: skip
    stats.images = len(rows)
    return pd.DataFrame(rows, columns=list(GENERATED_COLUMNS)), stats


def _output_keys(source_hash: str, person, params: dict) -> dict[str, str]:
    """The store keys of a planned person's seven pictures (by stem)."""
    return {
        stem: derive_key(source_hash, "generate", {**params, "copy": person.copy, "aged": person.aged, "stem": stem}, GENERATE_CODE_VERSION)
        for stem in PROFILE_STEMS
    }


def pending_generation(
    plan: pd.DataFrame,
    sources: pd.DataFrame,
    store: ImageStore,
    config: GenerateConfig,
    detector_config: DetectorConfig | None = None,
    age_model: AgeModel | None = None,
) -> pd.DataFrame:
    """The rows of `plan` with a picture not yet in `store` (what `generate` would draw; the rest it only reads back)."""
    params = generation_key_params(config, detector_config or DetectorConfig(), age_model)
    hashes = sources.set_index("source_profile_id")["content_hash"]
    todo = [any(not store.has(k) for k in _output_keys(hashes[p.source_profile_id], p, params).values()) for p in plan.itertuples()]
    return plan[np.array(todo, dtype=bool)]  # (a list would select columns when empty)


def generation_sources(train: pd.DataFrame) -> pd.DataFrame:
    """The unmasked, readable photo of each training profile: what generated people are painted from."""
    normals = train[(train["mask"] == MaskState.NOT_WEAR) & train["readable"]].drop_duplicates("profile_id")
    return normals[["profile_id", "image_id", "path", "content_hash"]].rename(columns={"profile_id": "source_profile_id"})


def add_generated(manifest: pd.DataFrame, generated: pd.DataFrame) -> pd.DataFrame:
    """`manifest` (a relabeled-schema manifest) followed by the generated rows, whose labels are their own originals."""
    generated = generated.assign(label_source="generated", label_changed=False, correction_reason="")
    for col in LABEL_COLUMNS:
        generated[f"raw_{col}"] = generated[col]
    dtypes = {c: t for c, t in manifest.dtypes.items() if c in generated.columns}
    return pd.concat([manifest, generated.astype(dtypes)], ignore_index=True)


def _paint(image: Image.Image, landmarks: np.ndarray, mask: MaskState, rng: np.random.Generator) -> tuple[Image.Image, dict]:
    """One photo of a generated person: a worn, incorrect or no mask on the source face."""
    if mask is MaskState.NOT_WEAR:
        placement, style = None, None
        picture = image.copy()
    else:
        placement = Placement.WEAR if mask is MaskState.WEAR else INCORRECT_PLACEMENTS[int(rng.integers(len(INCORRECT_PLACEMENTS)))]
        style = random_style(rng)
        picture, _ = paint_mask(image, landmarks, placement, style, rng)
    params = {"placement": None if placement is None else placement.value, "style": None if style is None else asdict(style)}
    record = {"width": picture.width, "height": picture.height, "landmarks": np.round(landmarks, 2).tolist(), "params": params}
    return picture, record
