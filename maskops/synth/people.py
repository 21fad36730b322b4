"""Write a synthetic dataset in the competition layout, with known label noise.

Every person is drawn from their own random stream (seed, role, index), so a dataset
with more profiles is a superset of a smaller one with the same seed, and the output
is byte-identical for a given seed on a given library stack.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from maskops.cpus import worker_count
from maskops.csv_safety import escape_formulas
from maskops.labels import PROFILE_STEMS, STEM_MASK, Gender, MaskState, age_group, encode
from maskops.layout import MASK_ONLY_DIR, STATE_FOLDERS
from maskops.synth.face import RACE_WEIGHTS, background, random_look, random_pose, render
from maskops.synth.masks import INCORRECT_PLACEMENTS, Placement, random_style
from maskops.synth.real_faces import LFW_FACES, MEASURED_FACES

log = logging.getLogger(__name__)

GENERATOR_VERSION = "1"
RECEIPT = "synth.json"
TRUTH_DIR = "ground_truth"
_TRAIN, _EVAL, _NOISE = 1, 2, 3  # random-stream roles


class SynthError(ValueError):
    """The synthetic dataset cannot be written as asked."""


@dataclass(frozen=True)
class SynthConfig:
    """What to draw. Noise rates are fractions of training profiles."""

    profiles: int
    eval_profiles: int = 0
    seed: int = 0
    gender_noise: float = 0.03
    age_noise: float = 0.03
    mask_swap_noise: float = 0.02
    jpeg_quality: int = 90
    # real faces (scikit-image's lfw_subset, not drawn) under mask_only/, unmasked and with painted masks: photos whose
    # mask state alone is known, so the models see real skin (maskops.synth.real_faces); 0 writes none
    mask_only_faces: int = 0

    def __post_init__(self) -> None:
        if self.profiles < 1 or self.eval_profiles < 0:
            raise SynthError(f"need profiles >= 1 and eval_profiles >= 0, got {self.profiles} and {self.eval_profiles}")
        rates = (self.gender_noise, self.age_noise, self.mask_swap_noise)
        if not all(math.isfinite(r) and r >= 0 for r in rates) or sum(rates) > 1:  # NaN passes every comparison
            raise SynthError(f"noise rates must be >= 0 and sum to at most 1, got {rates}")
        if not 1 <= self.jpeg_quality <= 100:
            raise SynthError(f"jpeg_quality must be 1..100, got {self.jpeg_quality}")
        if not 0 <= self.mask_only_faces <= LFW_FACES - MEASURED_FACES:
            raise SynthError(f"mask_only_faces must be 0..{LFW_FACES - MEASURED_FACES} (the other real faces are kept for measuring), "
                             f"got {self.mask_only_faces}")  # fmt: skip


@dataclass(frozen=True)
class Person:
    index: int
    gender: Gender
    age: int
    race: str


def _rng(seed: int, role: int, index: int, part: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, role, index, part])


def draw_person(seed: int, role: int, index: int) -> Person:
    """Gender and age like the competition data: ~60% female, >=60 rare (~7%)."""
    rng = _rng(seed, role, index)
    gender = Gender.FEMALE if rng.random() < 0.6 else Gender.MALE
    u = rng.random()
    if u < 0.47:
        age = int(rng.integers(18, 30))
    elif u < 0.93:
        age = int(np.clip(np.round(rng.triangular(30, 56, 60)), 30, 59))  # many in their 50s, near the boundary
    else:
        age = int(np.clip(np.round(60 + rng.exponential(2.5)), 60, 80))
    races = list(RACE_WEIGHTS)
    race = races[int(rng.choice(len(races), p=list(RACE_WEIGHTS.values())))]
    return Person(index, gender, age, race)


def _noise(config: SynthConfig, person: Person) -> tuple[str, int, int]:
    """(kind, recorded gender, recorded age); kind is '', 'gender', 'age' or 'mask_swap'."""
    rng = _rng(config.seed, _NOISE, person.index)
    u = rng.random()
    g, a = int(person.gender), person.age
    if u < config.gender_noise:
        return "gender", 1 - g, a
    if u < config.gender_noise + config.age_noise:
        shift = int(rng.integers(8, 22)) * (1 if rng.random() < 0.5 else -1)
        recorded = int(np.clip(a + shift, 18, 80))
        if recorded == a:
            recorded = a + 10
        return "age", g, recorded
    if u < config.gender_noise + config.age_noise + config.mask_swap_noise:
        return "mask_swap", g, a
    return "", g, a


def _shown_mask(stem: str, swapped: bool) -> MaskState:
    mask = STEM_MASK[stem]
    if swapped and mask is not MaskState.WEAR:
        return MaskState.NOT_WEAR if mask is MaskState.INCORRECT else MaskState.INCORRECT
    return mask


def _render_profile(args: tuple[SynthConfig, int, int, dict[str, str]]) -> None:
    """Draw one person's seven photos; `names` maps stem -> output path."""
    config, role, index, names = args
    person = draw_person(config.seed, role, index)
    swapped = role == _TRAIN and _noise(config, person)[0] == "mask_swap"
    rng = _rng(config.seed, role, index, part=1)
    look = random_look(rng, person.gender, person.age, person.race)
    backdrop = background(look, rng)
    for stem in PROFILE_STEMS:
        mask = _shown_mask(stem, swapped)
        placement = {MaskState.WEAR: Placement.WEAR, MaskState.NOT_WEAR: None}.get(mask)
        if mask is MaskState.INCORRECT:
            placement = INCORRECT_PLACEMENTS[int(rng.integers(len(INCORRECT_PLACEMENTS)))]
        style = random_style(rng) if placement is not None else None
        image, _ = render(look, random_pose(rng), rng, placement, style, backdrop)
        image.save(names[stem], quality=config.jpeg_quality)


def _eval_name(seed: int, index: int, stem: str) -> str:
    return hashlib.sha1(f"maskops-eval/{seed}/{index}/{stem}".encode()).hexdigest() + ".jpg"


def plan(config: SynthConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The tables of a dataset without drawing it: train.csv, info.csv, eval answers, label noise, true labels."""
    train_rows, noise_rows, people_rows = [], [], []
    for i in range(config.profiles):
        person = draw_person(config.seed, _TRAIN, i)
        kind, gender, age = _noise(config, person)
        pid = f"{i + 1:06d}"
        folder = f"{pid}_{Gender(gender).name.lower()}_{person.race}_{age}"
        train_rows.append({"id": pid, "gender": Gender(gender).name.lower(), "race": person.race, "age": age, "path": folder})
        people_rows.append({"profile_id": folder, "true_gender": person.gender.name.lower(), "true_age": person.age, "noise": kind})
        if kind == "gender":
            noise_rows.append(
                {
                    "profile_id": folder,
                    "image_id": "",
                    "field": "gender",
                    "recorded": Gender(gender).name.lower(),
                    "true": person.gender.name.lower(),
                }
            )
        elif kind == "age":
            noise_rows.append({"profile_id": folder, "image_id": "", "field": "age", "recorded": str(age), "true": str(person.age)})
        elif kind == "mask_swap":
            for stem, true in (("incorrect_mask", MaskState.NOT_WEAR), ("normal", MaskState.INCORRECT)):
                noise_rows.append(
                    {
                        "profile_id": folder,
                        "image_id": f"{folder}/{stem}",
                        "field": "mask",
                        "recorded": STEM_MASK[stem].name.lower(),
                        "true": true.name.lower(),
                    }
                )
    answer_rows = []
    for j in range(config.eval_profiles):
        person = draw_person(config.seed, _EVAL, j)
        grp = age_group(person.age)
        for stem in PROFILE_STEMS:
            mask = STEM_MASK[stem]
            answer_rows.append({
                "ImageID": _eval_name(config.seed, j, stem), "ans": encode(mask, person.gender, grp),
                "mask": int(mask), "gender": int(person.gender), "age": person.age, "age_group": int(grp),
                "person": j,
            })  # fmt: skip
    answers = pd.DataFrame(answer_rows, columns=["ImageID", "ans", "mask", "gender", "age", "age_group", "person"])
    order = _rng(config.seed, _EVAL, config.eval_profiles, part=2).permutation(len(answers))  # the real info.csv is not grouped by person
    answers = answers.iloc[order].reset_index(drop=True)
    info = pd.DataFrame({"ImageID": answers["ImageID"], "ans": 0})
    noise = pd.DataFrame(noise_rows, columns=["profile_id", "image_id", "field", "recorded", "true"])
    train = pd.DataFrame(train_rows, columns=["id", "gender", "race", "age", "path"])
    people = pd.DataFrame(people_rows, columns=["profile_id", "true_gender", "true_age", "noise"])
    return train, info, answers, noise, people


def _write_mask_only(root: Path, config: SynthConfig) -> int:
    """Real faces under <root>/mask_only/<state>/ (maskops.synth.real_faces); returns how many photos."""
    from maskops.synth.real_faces import lfw_faces, mask_only_photos, training_faces

    photos = mask_only_photos(lfw_faces(training_faces(config.mask_only_faces)), seed=config.seed)
    for name, photo, state in photos:
        folder = root / MASK_ONLY_DIR / STATE_FOLDERS[state]
        folder.mkdir(parents=True, exist_ok=True)
        photo.save(folder / f"{name}.jpg", quality=config.jpeg_quality)
    return len(photos)


def synthesize(
    out: str | Path,
    config: SynthConfig,
    *,
    workers: int | None = None,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write the dataset to `out` atomically and return its receipt.

    If `out` already holds a dataset made with the same config, nothing is redrawn.
    """
    out = Path(out).absolute()  # "." has no name to build the temporary folder's from
    receipt = {"generator_version": GENERATOR_VERSION, "config": asdict(config)}
    existing = out / RECEIPT
    if existing.is_file():
        try:
            old = json.loads(existing.read_text())
        except (ValueError, UnicodeDecodeError):  # a damaged receipt: the folder is synth's, but its settings are unknown
            old = {}
        old["config"] = {"mask_only_faces": 0, **(old.get("config") or {})}  # a receipt from before mask_only/ existed
        if {k: old.get(k) for k in receipt} == receipt and not force:
            log.info("%s already holds this synthetic dataset; nothing to do", out)
            return old
    if out.exists() and not force:
        raise SynthError(f"{out} exists and was not made with these settings; choose another --out or pass --force to replace it")
    if out.exists() and not (existing.is_file() or (out.is_dir() and not any(out.iterdir()))):
        raise SynthError(f"{out} is not a dataset maskops synth made (it has no {RECEIPT}), so --force will not replace it: "
                         "choose another --out")  # fmt: skip

    train, info, answers, noise, people = plan(config)
    tmp = out.with_name(f".{out.name}.partial-{uuid.uuid4().hex[:8]}")
    (tmp / "train" / "images").mkdir(parents=True)
    jobs = []
    for i, folder in enumerate(train["path"]):
        folder_dir = tmp / "train" / "images" / folder
        folder_dir.mkdir()
        jobs.append((config, _TRAIN, i, {s: str(folder_dir / f"{s}.jpg") for s in PROFILE_STEMS}))
    if config.eval_profiles:
        (tmp / "eval" / "images").mkdir(parents=True)
        for j in range(config.eval_profiles):
            names = {s: str(tmp / "eval" / "images" / _eval_name(config.seed, j, s)) for s in PROFILE_STEMS}
            jobs.append((config, _EVAL, j, names))
    try:
        with ProcessPoolExecutor(max_workers=workers or worker_count()) as pool:
            for k, _ in enumerate(pool.map(_render_profile, jobs, chunksize=4), 1):
                if progress:
                    progress(k, len(jobs))
        # formulas escaped like every CSV maskops writes (drawn values hold none: the bytes stay the same)
        escape_formulas(train).to_csv(tmp / "train" / "train.csv", index=False)
        if config.eval_profiles:
            escape_formulas(info).to_csv(tmp / "eval" / "info.csv", index=False)
        if config.mask_only_faces:
            receipt["mask_only_images"] = _write_mask_only(tmp, config)
        truth = tmp / TRUTH_DIR
        truth.mkdir()
        for table, name in ((answers, "eval_answers.csv"), (noise, "label_noise.csv"), (people, "people.csv")):
            escape_formulas(table).to_csv(truth / name, index=False)
        receipt |= {
            "train_images": 7 * config.profiles,
            "eval_images": 7 * config.eval_profiles,
            "noisy_profiles": int(noise["profile_id"].nunique()),
        }
        (tmp / RECEIPT).write_text(json.dumps(receipt, indent=2))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():  # force: swap in the new dataset, then drop the old one
        trash = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        out.rename(trash)
        tmp.rename(out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(out)
    return receipt
