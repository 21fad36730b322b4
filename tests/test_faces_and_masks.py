"""MTCNN and the mask painter on a real face (scikit-image's astronaut)."""

from __future__ import annotations

import numpy as np
import pytest

from maskops.crop import CropConfig, crop_box
from maskops.synth.masks import Placement, covers, paint_mask, random_style


def test_mtcnn_finds_the_real_face(face_detector, astronaut):
    (face,) = face_detector.detect([astronaut])
    assert face is not None and face.prob > 0.99
    x0, y0, x1, y1 = face.box
    assert 150 < (x0 + x1) / 2 < 250 and 50 < (y0 + y1) / 2 < 150  # her face, not the flag or the suit
    eyes, nose, mouth = face.landmarks[:2], face.landmarks[2], face.landmarks[3:]
    assert eyes[:, 1].max() < nose[1] < mouth[:, 1].min()


def test_crop_contains_the_face(face_detector, astronaut):
    (face,) = face_detector.detect([astronaut])
    box, fallback = crop_box(face, astronaut.width, astronaut.height, CropConfig())
    assert not fallback and box[2] - box[0] == box[3] - box[1]
    fx0, fy0, fx1, fy1 = face.box
    assert box[0] <= fx0 and box[1] <= fy0 and box[2] >= fx1 and box[3] >= fy1
    crop = astronaut.crop(box)
    (again,) = face_detector.detect([crop])
    assert again is not None and again.prob > 0.99  # the crop still shows the face


def test_no_face_uses_the_centre_crop():
    box, fallback = crop_box(None, 384, 512, CropConfig(fallback_fraction=0.5))
    assert fallback and box == (96, 160, 288, 352)


@pytest.mark.parametrize("placement", list(Placement))
def test_mask_follows_the_landmarks(face_detector, astronaut, placement):
    (face,) = face_detector.detect([astronaut])
    rng = np.random.default_rng(0)
    masked, coverage = paint_mask(astronaut, face.landmarks, placement, random_style(rng), rng)
    nose, mouth = face.landmarks[2], face.landmarks[3:].mean(axis=0)
    eyes = face.landmarks[:2]
    assert not any(covers(coverage, e) for e in eyes)
    if placement is Placement.WEAR:
        assert covers(coverage, nose) and covers(coverage, mouth)
    elif placement is Placement.UNDER_NOSE:
        assert not covers(coverage, nose) and covers(coverage, mouth)
    else:
        assert not covers(coverage, nose) and not covers(coverage, mouth)
        assert covers(coverage, mouth + (mouth - nose) * 1.2)  # on the chin
    changed = np.abs(np.asarray(masked, float) - np.asarray(astronaut, float)).sum(axis=2) > 0
    assert changed[coverage > 0.5].mean() > 0.95  # painted where it says it covers


def test_masked_face_is_still_found(face_detector, astronaut):
    (face,) = face_detector.detect([astronaut])
    rng = np.random.default_rng(1)
    masked, _ = paint_mask(astronaut, face.landmarks, Placement.WEAR, random_style(rng), rng)
    (again,) = face_detector.detect([masked])
    assert again is not None and np.abs(np.array(again.box) - np.array(face.box)).max() < 40
