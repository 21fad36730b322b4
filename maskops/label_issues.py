"""Suspected label errors, found from out-of-fold probabilities with cleanlab (confident learning, per field).

Every image gets class probabilities from a model that never trained on its person (one model
per fold of the profile split). The 18 probabilities are split into the three fields the labels
are made of — mask per image, gender and age group per person (the mean over the person's
images, since a person has one gender and one age). cleanlab (`cleanlab.filter.find_label_issues`,
pruned by the estimated noise rates) decides which labels are issues; every label is ranked by how
much the likeliest other value beats the given one, so the review starts with the surest errors.
On a synthetic dataset the ranking is scored against the injected errors (score_against_truth).
"""

from __future__ import annotations

import warnings
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
        """The out-of-fold models' training settings: the scratch preset at this size, every epoch kept."""
        from maskops.train_config import config_from

        return config_from("scratch", backbone=self.backbone, image_size=self.image_size, epochs=self.epochs, seed=self.seed,
                           patience=self.epochs, device=device)  # fmt: skip


ISSUE_COLUMNS = ("profile_id", "stem", "field", "given", "suggested", "p_given", "p_suggested", "score", "images")


def field_probabilities(probabilities: np.ndarray) -> dict[str, np.ndarray]:
    """(N, 18) class probabilities -> the marginal probabilities of mask (N, 3), gender (N, 2) and age group (N, 3)."""
    cube = np.asarray(probabilities, dtype=np.float64).reshape(-1, 3, 2, 3)  # class = 6 mask + 3 gender + age
    return {"mask": cube.sum(axis=(2, 3)), "gender": cube.sum(axis=(1, 3)), "age_group": cube.sum(axis=(1, 2))}


def judge(given: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    """cleanlab's confident learning on one field: per item, whether it is a label issue (pruned by the
    estimated noise rates), the value it suggests (the likeliest other value) and the probabilities behind it."""
    from cleanlab.filter import find_label_issues as confident_learning

    given, probs = np.asarray(given, dtype=int), np.asarray(probs, dtype=np.float64)
    others = probs.copy()
    others[np.arange(len(given)), given] = -1.0
    suggested = others.argmax(axis=1)
    p_given, p_suggested = probs[np.arange(len(given)), given], probs[np.arange(len(given)), suggested]
    if len(given) == 0 or np.allclose(probs, probs[:1]):  # no model opinion tells items apart: nothing to flag
        flagged = np.zeros(len(given), dtype=bool)
    else:
        with warnings.catch_warnings():  # a class nobody carries is expected on small data; cleanlab warns about it
            warnings.simplefilter("ignore")
            flagged = confident_learning(given, probs, filter_by="prune_by_noise_rate", n_jobs=1)
    return pd.DataFrame({"flagged": flagged, "given": given, "suggested": suggested, "p_given": p_given, "p_suggested": p_suggested,
                         "score": p_suggested - p_given})  # fmt: skip


def rank_labels(manifest: pd.DataFrame, probabilities: np.ndarray) -> pd.DataFrame:
    """Every label of `manifest` (profile_id, stem, mask, gender, age_group per image) judged from out-of-fold
    `probabilities` (N, 18) in the same order: one row per person for gender and age group (on the mean of their
    photos), one per photo for mask; `flagged` is cleanlab's verdict; most suspicious first (score, the margin
    of the suggested value over the given one)."""
    if len(manifest) != len(probabilities):
        raise ValueError(f"{len(manifest)} images but {len(probabilities)} rows of probabilities")
    marginals = field_probabilities(probabilities)
    frame = manifest[["profile_id", "stem", "mask", "gender", "age_group"]].reset_index(drop=True)
    parts = []
    for field in ("gender", "age_group"):  # one value per person: judge the person on all their photos
        people = pd.DataFrame(marginals[field]).groupby(frame["profile_id"], sort=True)
        means = people.mean()
        given = frame.groupby("profile_id", sort=True)[field].first().reindex(means.index).to_numpy(dtype=int)
        verdict = judge(given, means.to_numpy())
        parts.append(verdict.assign(profile_id=means.index.to_numpy(), stem="", field=field, images=people.size().to_numpy()))
    verdict = judge(frame["mask"].to_numpy(dtype=int), marginals["mask"])
    parts.append(verdict.assign(profile_id=frame["profile_id"].to_numpy(), stem=frame["stem"].to_numpy(), field="mask", images=1))
    for part in parts:
        names = FIELDS[part["field"].iat[0]] if len(part) else MaskState
        part[["given", "suggested"]] = part[["given", "suggested"]].map(lambda v, names=names: names(int(v)).name.lower())
    ranked = pd.concat(parts, ignore_index=True).sort_values(
        ["score", "profile_id", "stem"], ascending=[False, True, True], ignore_index=True
    )
    return ranked[[*ISSUE_COLUMNS, "flagged"]]


def find_label_issues(manifest: pd.DataFrame, probabilities: np.ndarray) -> pd.DataFrame:
    """The labels cleanlab flags (see rank_labels), most suspicious first, in ISSUE_COLUMNS."""
    ranked = rank_labels(manifest, probabilities)
    return ranked.loc[ranked["flagged"], list(ISSUE_COLUMNS)].reset_index(drop=True)


def score_against_truth(ranked: pd.DataFrame, wrong: dict[str, set]) -> dict[str, dict]:
    """How well the ranking (rank_labels) finds the labels known to be wrong (maskops.synth.truth.remaining_errors),
    per field and for person-level labels (gender and age group together): precision and recall of what
    cleanlab flagged, and recall within the top 2 x (number wrong) of the ranking."""
    keys = [(p, s) if f == "mask" else p for p, s, f in zip(ranked["profile_id"], ranked["stem"], ranked["field"], strict=True)]
    is_wrong = np.array([k in wrong.get(f, set()) for k, f in zip(keys, ranked["field"], strict=True)], dtype=bool)
    flagged = ranked["flagged"].to_numpy(dtype=bool)
    report = {}
    for name, fields in {"mask": ["mask"], "gender": ["gender"], "age_group": ["age_group"], "person": ["gender", "age_group"]}.items():
        rows = ranked["field"].isin(fields).to_numpy()
        bad, hit = is_wrong[rows], flagged[rows]
        n_wrong, top = int(bad.sum()), 2 * int(bad.sum())
        report[name] = {
            "items": int(rows.sum()), "wrong": n_wrong, "flagged": int(hit.sum()), "flagged_wrong": int((bad & hit).sum()),
            "precision": float((bad & hit).sum() / hit.sum()) if hit.any() else None,
            "recall": float((bad & hit).sum() / n_wrong) if n_wrong else None,
            "recall_top_2k": float(bad[:top].sum() / n_wrong) if n_wrong else None,
        }  # fmt: skip
    return report


def suspect_photos(issues: pd.DataFrame, photos: pd.DataFrame) -> tuple[list[str], list[str]]:
    """A photo (crop path) and a caption per suspect: the photo in question, or the person's first photo for a person-level field."""
    first = photos.drop_duplicates("profile_id").set_index("profile_id")["crop_path"]
    by_photo = photos.set_index(["profile_id", "stem"])["crop_path"]
    paths = [by_photo[(r.profile_id, r.stem)] if r.stem else first[r.profile_id] for r in issues.itertuples()]
    return paths, [f"{r.field}: {r.given}->{r.suggested}" for r in issues.itertuples()]


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
