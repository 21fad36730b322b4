"""Suspected label errors, found from out-of-fold probabilities (confident learning, per field).

Every image gets class probabilities from a model that never trained on its person (one model
per fold of the profile split). The 18 probabilities are split into the three fields the labels
are made of — mask per image, gender and age group per person (the mean over the person's
images, since a person has one gender and one age). A label is suspect when its probability is
below the average probability that items with that label get (the per-class threshold of
confident learning, so a weak or rare class is not flagged wholesale) and another value is at
least as confident as items with that value usually are. Suspects are ranked by how much the
suggested value beats the given one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from maskops.labels import AgeGroup, Gender, MaskState
from maskops.options import option

if TYPE_CHECKING:
    import torch

FIELDS = {"mask": MaskState, "gender": Gender, "age_group": AgeGroup}


@dataclass(frozen=True)
class LabelIssuesConfig:
    backbone: str = option("resnet10t", "timm model of the out-of-fold models (one per fold).")
    image_size: int = option(64, "Input side of the out-of-fold models.")
    epochs: int = option(4, "Epochs per fold.")
    seed: int = option(0, "Seed of the out-of-fold models.")
    sheet: int = option(16, "Suspects shown in the contact sheet.", in_key=False)

    def train_config(self, device: str = "auto"):
        """The out-of-fold models' training settings: the demo preset at this size, every epoch kept."""
        from maskops.train_config import config_from

        return config_from("demo", backbone=self.backbone, image_size=self.image_size, epochs=self.epochs, seed=self.seed,
                           patience=self.epochs, device=device)  # fmt: skip


ISSUE_COLUMNS = ("profile_id", "stem", "field", "given", "suggested", "p_given", "p_suggested", "score", "images")


def field_probabilities(probabilities: np.ndarray) -> dict[str, np.ndarray]:
    """(N, 18) class probabilities -> the marginal probabilities of mask (N, 3), gender (N, 2) and age group (N, 3)."""
    cube = np.asarray(probabilities, dtype=np.float64).reshape(-1, 3, 2, 3)  # class = 6 mask + 3 gender + age
    return {"mask": cube.sum(axis=(2, 3)), "gender": cube.sum(axis=(1, 3)), "age_group": cube.sum(axis=(1, 2))}


def _suspects(given: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Confident learning on one field: (suspect mask, suggested value) per item."""
    k = probs.shape[1]
    thresholds = np.array([probs[given == j, j].mean() if (given == j).any() else 1.0 for j in range(k)])
    confident = probs >= thresholds  # values each item is as sure of as items with that label usually are
    confident[np.arange(len(given)), given] = False
    candidates = np.where(confident, probs, -1.0)
    suggested = candidates.argmax(axis=1)
    suspect = (probs[np.arange(len(given)), given] < thresholds[given]) & (candidates.max(axis=1) > probs[np.arange(len(given)), given])
    return suspect, suggested


def find_label_issues(manifest: pd.DataFrame, probabilities: np.ndarray) -> pd.DataFrame:
    """Suspected wrong labels of `manifest` (profile_id, stem, mask, gender, age_group per image) given
    out-of-fold `probabilities` (N, 18) in the same order; one row per suspect, most suspicious first."""
    if len(manifest) != len(probabilities):
        raise ValueError(f"{len(manifest)} images but {len(probabilities)} rows of probabilities")
    marginals = field_probabilities(probabilities)
    rows: list[dict] = []
    frame = manifest[["profile_id", "stem", "mask", "gender", "age_group"]].reset_index(drop=True)
    for field in ("gender", "age_group"):  # one value per person: judge the person on all their photos
        people = pd.DataFrame(marginals[field]).groupby(frame["profile_id"], sort=True)
        means = people.mean()
        probs, counts = means.to_numpy(), people.size().to_numpy()
        given = frame.groupby("profile_id", sort=True)[field].first().reindex(means.index).to_numpy(dtype=int)
        suspect, suggested = _suspects(given, probs)
        for i in np.flatnonzero(suspect):
            rows.append(_row(means.index[i], "", field, given[i], suggested[i], probs[i], int(counts[i])))
    given = frame["mask"].to_numpy(dtype=int)
    suspect, suggested = _suspects(given, marginals["mask"])
    for i in np.flatnonzero(suspect):
        rows.append(_row(frame.at[i, "profile_id"], frame.at[i, "stem"], "mask", given[i], suggested[i], marginals["mask"][i], 1))
    issues = pd.DataFrame(rows, columns=list(ISSUE_COLUMNS))
    return issues.sort_values(["score", "profile_id", "stem"], ascending=[False, True, True], ignore_index=True)


def suspect_photos(issues: pd.DataFrame, photos: pd.DataFrame) -> tuple[list[str], list[str]]:
    """A photo (crop path) and a caption per suspect: the photo in question, or the person's first photo for a person-level field."""
    first = photos.drop_duplicates("profile_id").set_index("profile_id")["crop_path"]
    by_photo = photos.set_index(["profile_id", "stem"])["crop_path"]
    paths = [by_photo[(r.profile_id, r.stem)] if r.stem else first[r.profile_id] for r in issues.itertuples()]
    return paths, [f"{r.field}: {r.given}->{r.suggested}" for r in issues.itertuples()]


def _row(profile_id: str, stem: str, field: str, given: int, suggested: int, probs: np.ndarray, images: int) -> dict:
    names = FIELDS[field]
    p_given, p_suggested = float(probs[given]), float(probs[suggested])
    return {
        "profile_id": profile_id, "stem": stem, "field": field, "given": names(int(given)).name.lower(),
        "suggested": names(int(suggested)).name.lower(), "p_given": p_given, "p_suggested": p_suggested,
        "score": p_suggested - p_given, "images": images,
    }  # fmt: skip


def out_of_fold_probabilities(
    images: torch.Tensor,
    labels: np.ndarray,
    folds: np.ndarray,
    cfg,
    on_fold: Callable[[int, dict[str, float]], None] | None = None,
) -> np.ndarray:
    """(N, 18) probabilities where every image is predicted by a model trained on the other folds only.

    The held-out fold also serves as the model's validation set, so the epoch kept is the one that
    agrees best with the held-out labels: that can only hide an error, never invent one.
    """
    from maskops.train import predict, train_model

    folds = np.asarray(folds)
    out = np.zeros((len(labels), 18), dtype=np.float64)
    for fold in sorted(set(folds.tolist())):
        held = folds == fold
        result = train_model(images[~held], labels[~held], images[held], labels[held], cfg)
        out[held] = predict(result.model, images[held])
        if on_fold is not None:
            on_fold(int(fold), result.val_metrics)
    return out
