"""The 18-class label space: mask state x gender x age group.

class id = 6 * mask + 3 * gender + age_group, as in the competition.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

NUM_CLASSES = 18
AGE_BOUNDARIES = (30, 60)  # <30 -> YOUNG, 30..59 -> MIDDLE, >=60 -> OLD
MIN_AGE, MAX_AGE = 0, 120


# A training label may also be "mask state only" (gender and age unknown): MASK_ONLY + mask, i.e. 18, 19, 20. Real
# photographs whose people nobody labelled can still teach the mask task (maskops.losses.Criterion marginalizes the
# unknown gender and age); such labels never enter validation, metrics or class counts.
MASK_ONLY = NUM_CLASSES


def mask_only_label(mask: int) -> int:
    """The partial label of a photo whose mask state alone is known."""
    return MASK_ONLY + int(MaskState(mask))


class LabelError(ValueError):
    """A label value is outside its domain."""


class MaskState(IntEnum):
    WEAR = 0
    INCORRECT = 1
    NOT_WEAR = 2


class Gender(IntEnum):
    MALE = 0
    FEMALE = 1


class AgeGroup(IntEnum):
    YOUNG = 0  # < 30
    MIDDLE = 1  # 30..59
    OLD = 2  # >= 60


# Image file stems of one profile and the mask state each one shows.
STEM_MASK: dict[str, MaskState] = {
    **{f"mask{i}": MaskState.WEAR for i in range(1, 6)},
    "incorrect_mask": MaskState.INCORRECT,
    "normal": MaskState.NOT_WEAR,
}
PROFILE_STEMS: tuple[str, ...] = tuple(STEM_MASK)

GENDER_NAMES = {"male": Gender.MALE, "female": Gender.FEMALE}


def parse_gender(text: str) -> Gender:
    """'male' / 'female' (any case) -> Gender."""
    try:
        return GENDER_NAMES[text.strip().lower()]
    except KeyError:
        raise LabelError(f"unknown gender {text!r}; expected one of {sorted(GENDER_NAMES)}") from None


def parse_age(text: str | int) -> int:
    """An integer age in [MIN_AGE, MAX_AGE]; anything else raises LabelError."""
    try:
        age = int(str(text).strip())
    except ValueError:
        raise LabelError(f"age {text!r} is not an integer") from None
    if not MIN_AGE <= age <= MAX_AGE:
        raise LabelError(f"age {age} is impossible; expected {MIN_AGE}..{MAX_AGE}")
    return age


def age_group(age: int) -> AgeGroup:
    """The competition's age bins: <30, 30..59, >=60."""
    if age < AGE_BOUNDARIES[0]:
        return AgeGroup.YOUNG
    if age < AGE_BOUNDARIES[1]:
        return AgeGroup.MIDDLE
    return AgeGroup.OLD


def encode(mask: int, gender: int, age_grp: int) -> int:
    """(mask, gender, age group) -> class id 0..17."""
    MaskState(mask), Gender(gender), AgeGroup(age_grp)  # raise ValueError on bad parts
    return 6 * int(mask) + 3 * int(gender) + int(age_grp)


def decode(class_id: int) -> tuple[MaskState, Gender, AgeGroup]:
    """class id 0..17 -> (mask, gender, age group)."""
    if not 0 <= int(class_id) < NUM_CLASSES:
        raise LabelError(f"class id {class_id} is outside 0..{NUM_CLASSES - 1}")
    c = int(class_id)
    return MaskState(c // 6), Gender((c // 3) % 2), AgeGroup(c % 3)


def encode_array(mask: np.ndarray, gender: np.ndarray, age_grp: np.ndarray) -> np.ndarray:
    """Vectorised encode for manifests."""
    return 6 * np.asarray(mask) + 3 * np.asarray(gender) + np.asarray(age_grp)


def age_group_array(age: np.ndarray) -> np.ndarray:
    """Vectorised age_group."""
    return np.digitize(np.asarray(age), AGE_BOUNDARIES).astype(np.int8)


# The age groups in words, everywhere a person reads them (Dagster, checks, the review page, predict): <30, 30-59, >=60
AGE_GROUP_WORDS: dict[AgeGroup, str] = {AgeGroup.YOUNG: "<30", AgeGroup.MIDDLE: "30-59", AgeGroup.OLD: ">=60"}
AGE_WORDS_BY_NAME = {g.name.lower(): words for g, words in AGE_GROUP_WORDS.items()}  # models say "young"; people read "<30"


def class_name(class_id: int) -> str:
    """Human-readable name, e.g. 'wear/female/30-59'."""
    mask, gender, grp = decode(class_id)
    return f"{mask.name.lower()}/{gender.name.lower()}/{AGE_GROUP_WORDS[grp]}"


CLASS_NAMES: tuple[str, ...] = tuple(class_name(c) for c in range(NUM_CLASSES))
