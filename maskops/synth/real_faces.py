"""Real faces that ship with scikit-image, for photos whose mask state alone is known.

The models otherwise only ever see drawn people, and a drawn face teaches nothing about real skin: trained on drawn
people alone, every member called every real unmasked face "mask worn" (bench/real_photos.py). `lfw_subset` (Labeled
Faces in the Wild, 100 faces of 25 x 25 px, greyscale, inside the scikit-image package: nothing is downloaded) gives
real faces; each is enlarged and framed like a phone portrait and goes in unmasked ("not_wear"), with a mask painted
along MTCNN's landmarks by the project's own generator ("wear"), and with one painted below the nose or on the chin
("incorrect"). Nobody labelled their gender or age: they are mask-only photos (maskops.labels.MASK_ONLY).

The faces are split once, here, so that what trains and what bench/real_photos.py measures never meet: the first
MEASURED_FACES faces are measured, the rest may train.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from maskops.labels import MaskState

LFW_FACES = 100  # lfw_subset: 200 images, the first 100 are faces
MEASURED_FACES = 60  # lfw_subset faces 0..59: bench/real_photos.py's measurement set, never trained on
DEMO_MASK_ONLY_FACES = LFW_FACES - MEASURED_FACES  # `maskops synth` and the demo: every face bench/real_photos.py does not measure
FRAME = (300, 400)  # width, height: a phone portrait's 3:4


def framed(face: np.ndarray, side: int = 190) -> Image.Image:
    """A small face crop enlarged to `side` px and centred a little above the middle of a grey 3:4 frame."""
    picture = Image.fromarray(face).convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", FRAME, (128, 128, 128))
    canvas.paste(picture, ((FRAME[0] - side) // 2, (FRAME[1] - side) // 2 - 30))
    return canvas


def lfw_faces(indices: range) -> dict[str, Image.Image]:
    """lfw_subset's faces at `indices` (0..99), framed as portraits, by name lfw_<index>."""
    from skimage import data

    if indices.start < 0 or indices.stop > LFW_FACES:
        raise ValueError(f"lfw_subset has faces 0..{LFW_FACES - 1}, asked for {indices.start}..{indices.stop - 1}")
    lfw = data.lfw_subset()
    return {f"lfw_{i:03d}": framed((lfw[i] * 255).astype(np.uint8)) for i in indices}


def training_faces(count: int) -> range:
    """The lfw_subset faces that may train: the last `count` ones, never among the MEASURED_FACES."""
    if not 0 <= count <= LFW_FACES - MEASURED_FACES:
        raise ValueError(
            f"at most {LFW_FACES - MEASURED_FACES} real faces may train (faces 0..{MEASURED_FACES - 1} are kept for measuring), got {count}"
        )
    return range(LFW_FACES - count, LFW_FACES)


def mask_only_photos(photos: dict[str, Image.Image], seed: int = 0, detector=None) -> list[tuple[str, Image.Image, MaskState]]:
    """(name, photo, mask state) for each photo unmasked, and — where MTCNN finds its face — painted as worn and as
    worn wrongly (below the nose or on the chin), with the generator's mask styles."""
    from maskops.faces import FaceDetector
    from maskops.synth.masks import INCORRECT_PLACEMENTS, Placement, paint_mask, random_style

    rng, out = np.random.default_rng(seed), []
    found = (detector or FaceDetector()).detect(list(photos.values()))
    for (name, photo), face in zip(photos.items(), found, strict=True):
        out.append((name, photo, MaskState.NOT_WEAR))
        if face is None:
            continue
        out.append((f"{name}_wear", paint_mask(photo, face.landmarks, Placement.WEAR, random_style(rng), rng)[0], MaskState.WEAR))
        wrong = INCORRECT_PLACEMENTS[int(rng.integers(len(INCORRECT_PLACEMENTS)))]
        out.append((f"{name}_incorrect", paint_mask(photo, face.landmarks, wrong, random_style(rng), rng)[0], MaskState.INCORRECT))
    return out
