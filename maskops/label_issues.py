"""Suspected label errors, found from out-of-fold probabilities with cleanlab (confident learning, per field).

Every image gets class probabilities from a model that never trained on its person (one model
per fold of the profile split). By default (`method: probe`) those models are logistic regressions, one per
field and fold, on frozen features of an ImageNet-pretrained backbone (the EfficientNet-Lite0 that `maskops
fetch-models` provisions; frozen_features): one forward pass per photo, then seconds of fitting. `method: train`
trains a small network from scratch per fold instead; at the demo's 64 people those learn too little to judge
anyone (held-out macro F1 0.12-0.32 over the 18 classes; 83 of 576 labels flagged, 1 of them wrong), where the
probes read 0.46-0.69 and flag 4, 2 of them wrong. The 18 probabilities are split into the three fields the labels
are made of — mask per image, gender and age group per person (the mean over the person's
images, since a person has one gender and one age). cleanlab (`cleanlab.filter.find_label_issues`,
pruned by the estimated noise rates) decides which labels are issues; every label is ranked by how
much the likeliest other value beats the given one, so the review starts with the surest errors.

Age is a number, and the group alone hides most age errors: a person of 56 recorded as 70 sits one
group away from a face the models can hardly tell from 60. So the same out-of-fold models also
predict every person's age (a ridge regression on their pooled features, fitted on the other folds'
people), and the age group is judged on the recorded age itself (judge_age): how likely a recorded age
that far from the face is a wrong one, times how likely the true age then falls in another group.
On a synthetic dataset the ranking is scored against the injected errors (score_against_truth).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from maskops.labels import AGE_BOUNDARIES, AgeGroup, Gender, MaskState, age_group_array
from maskops.options import option

if TYPE_CHECKING:
    import torch
    from PIL import Image

FIELDS = {"mask": MaskState, "gender": Gender, "age_group": AgeGroup}
FIELD_SIZES = (3, 2, 3)  # class_id = 6 mask + 3 gender + age group: the 18 classes as a 3 x 2 x 3 cube


METHODS = ("probe", "train")


@dataclass(frozen=True)
class LabelIssuesConfig:
    method: str = option("probe", "How each fold's model is made: 'probe', a logistic regression per field on the frozen features of "
                         "the pretrained probe_backbone (seconds); 'train', a backbone trained from scratch (minutes; it needs "
                         "hundreds of people to learn enough).")  # fmt: skip
    probe_backbone: str = option("efficientnet_lite0", "method probe: the pretrained timm backbone whose features the probes read "
                                 "(the mean of each feature stage).")  # fmt: skip
    probe_weights: str = option("", "method probe: a local .pth/.safetensors of probe_backbone; empty: the file `maskops fetch-models "
                                "--backbone <probe_backbone>` provisioned in the models folder.")  # fmt: skip
    probe_image_size: int = option(160, "method probe: input side of the backbone.")
    probe_c: float = option(0.1, "method probe: inverse L2 strength of the logistic regressions (on standardized features).")
    backbone: str = option("resnet10t", "method train: timm model of the out-of-fold models (one per fold).")
    image_size: int = option(64, "method train: input side of the out-of-fold models.")
    epochs: int = option(4, "method train: epochs per fold.")
    seed: int = option(0, "method train: seed of the out-of-fold models.")
    judge_age: bool = option(True, "Judge the age group on the recorded age against the age the photos show (judge_age); "
                             "off: on the out-of-fold age-group probabilities, like gender.")  # fmt: skip
    sheet: int = option(16, "Suspects shown in the contact sheet.", in_key=False)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"label_issues method must be one of {METHODS}, got {self.method!r}")
        if self.probe_c <= 0:
            raise ValueError(f"label_issues probe_c must be > 0, got {self.probe_c}")

    def train_config(self, device: str = "auto"):
        """The out-of-fold models' training settings: the scratch preset at this size, every epoch kept."""
        from maskops.train_config import config_from

        return config_from("scratch", backbone=self.backbone, image_size=self.image_size, epochs=self.epochs, seed=self.seed,
                           patience=self.epochs, device=device)  # fmt: skip


ISSUE_COLUMNS = ("profile_id", "stem", "field", "given", "suggested", "p_given", "p_suggested", "score", "images")


def field_probabilities(probabilities: np.ndarray) -> dict[str, np.ndarray]:
    """(N, 18) class probabilities -> the marginal probabilities of mask (N, 3), gender (N, 2) and age group (N, 3)."""
    cube = np.asarray(probabilities, dtype=np.float64).reshape(-1, *FIELD_SIZES)
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


# Where a true age may lie between the recorded ages' groups: integer ages, so the bins split at 29.5 and 59.5
_AGE_EDGES = np.array([-np.inf, AGE_BOUNDARIES[0] - 0.5, AGE_BOUNDARIES[1] - 0.5, np.inf])


def judge_age(recorded: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    """The age group of each person judged on their recorded age (years) against the age their photos show
    (`predicted`, out of fold), in judge's columns.

    A recorded age is either right, and then off the prediction by the model's usual error (a normal whose
    spread is the robust spread of all residuals), or wrong, and then anywhere in the recorded range (uniform),
    with a prior rate of wrong ages from the residuals beyond 3 spreads. If it is wrong, the true age is what
    the photos show: the same normal around the prediction gives the group probabilities. So
    P(group wrong) = P(age wrong | residual) x P(true age outside the given group); p_suggested is that for the
    likeliest other group, p_given = 1 - P(group wrong), flagged when P(group wrong) > 0.5. Far-off ages that stay
    inside their group are not age-group errors and score low."""
    from scipy.stats import norm

    recorded, predicted = np.asarray(recorded, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    given = age_group_array(recorded.round().astype(int)).astype(int)
    if len(recorded) == 0:
        return judge(given, np.zeros((0, 3)))
    residual = recorded - predicted
    spread = max(1.0, 1.4826 * float(np.median(np.abs(residual - np.median(residual)))))
    prior = float(np.clip(np.mean(np.abs(residual) > 3 * spread), 0.01, 0.5))
    right = (1 - prior) * norm.pdf(residual, scale=spread)
    wrong = prior / max(1.0, float(recorded.max() - recorded.min()))
    p_age_wrong = wrong / (wrong + right)
    groups = np.diff(norm.cdf((_AGE_EDGES[None, :] - predicted[:, None]) / spread), axis=1)  # (N, 3)
    rows = np.arange(len(given))
    others = groups.copy()
    others[rows, given] = -1.0
    suggested = others.argmax(axis=1)
    p_group_wrong = p_age_wrong * (1 - groups[rows, given])
    p_given, p_suggested = 1 - p_group_wrong, p_age_wrong * groups[rows, suggested]
    return pd.DataFrame({"flagged": p_group_wrong > 0.5, "given": given, "suggested": suggested, "p_given": p_given,
                         "p_suggested": p_suggested, "score": p_suggested - p_given})  # fmt: skip


def rank_labels(manifest: pd.DataFrame, probabilities: np.ndarray, age: np.ndarray | None = None) -> pd.DataFrame:
    """Every label of `manifest` (profile_id, stem, mask, gender, age_group per image; age in years when `age` is
    given) judged from out-of-fold `probabilities` (N, 18) in the same order: one row per person for gender and age
    group (on the mean of their photos), one per photo for mask; `flagged` is cleanlab's verdict; most suspicious
    first (score, the margin of the suggested value over the given one). With the out-of-fold `age` the photos show
    (N,), the age group is judged on the recorded age instead (judge_age)."""
    if len(manifest) != len(probabilities):
        raise ValueError(f"{len(manifest)} images but {len(probabilities)} rows of probabilities")
    if age is not None and (len(age) != len(manifest) or "age" not in manifest.columns):
        raise ValueError(f"judging ages needs an 'age' column and one predicted age per image, got {len(age)} for {len(manifest)}")
    marginals = field_probabilities(probabilities)
    frame = manifest[["profile_id", "stem", "mask", "gender", "age_group", *(["age"] if age is not None else [])]]
    frame = frame.reset_index(drop=True)
    parts = []
    for field in ("gender", "age_group"):  # one value per person: judge the person on all their photos
        people = pd.DataFrame(marginals[field]).groupby(frame["profile_id"], sort=True)
        means = people.mean()
        if field == "age_group" and age is not None:
            shown = pd.Series(np.asarray(age, dtype=np.float64)).groupby(frame["profile_id"], sort=True).mean()
            verdict = judge_age(frame.groupby("profile_id", sort=True)["age"].first().reindex(shown.index).to_numpy(), shown.to_numpy())
        else:
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


def flagged(ranked: pd.DataFrame) -> pd.DataFrame:
    """The flagged rows of a ranking (rank_labels), most suspicious first, in ISSUE_COLUMNS: the suspects."""
    return ranked.loc[ranked["flagged"], list(ISSUE_COLUMNS)].reset_index(drop=True)


def find_label_issues(manifest: pd.DataFrame, probabilities: np.ndarray, age: np.ndarray | None = None) -> pd.DataFrame:
    """The labels flagged (see rank_labels), most suspicious first, in ISSUE_COLUMNS."""
    return flagged(rank_labels(manifest, probabilities, age))


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


@dataclass(frozen=True)
class OutOfFold:
    """What models that never saw a person say about them: class probabilities (N, 18) and, when ages were given,
    the age the photos show (N,), one value per person repeated on their photos."""

    probabilities: np.ndarray
    age: np.ndarray | None = None


def out_of_fold(
    images: torch.Tensor,
    labels: np.ndarray,
    folds: np.ndarray,
    cfg,
    on_fold: Callable[[int, dict[str, float]], None] | None = None,
    ages: np.ndarray | None = None,
    people: np.ndarray | None = None,
) -> OutOfFold:
    """Every image predicted by a model trained on the other folds only: (N, 18) probabilities and, with the recorded
    `ages` and the `people` (profile ids) of the images, each held-out person's age from a ridge regression on the
    fold model's pooled features, fitted on the other folds' people (fit_age).

    The held-out fold also serves as the model's validation set, so the epoch kept is the one that
    agrees best with the held-out labels: that can only hide an error, never invent one.
    """
    from maskops.train import predict, train_model

    folds = np.asarray(folds)
    out = np.zeros((len(labels), 18), dtype=np.float64)
    shown = np.zeros(len(labels), dtype=np.float64) if ages is not None else None
    if shown is not None:
        ages, people = np.asarray(ages, dtype=np.float64), np.asarray(people)
    for fold in sorted(set(folds.tolist())):
        held = folds == fold
        result = train_model(images[~held], labels[~held], images[held], labels[held], cfg)
        out[held] = predict(result.model, images[held])
        if shown is not None:
            features = predict(result.model, images, features=True)
            shown[held] = fit_age(features, ages, people, ~held)
        if on_fold is not None:
            on_fold(int(fold), result.val_metrics)
    return OutOfFold(out, shown)


def frozen_features(images: torch.Tensor, backbone: str, weights: str = "", device: str = "auto", batch_size: int = 64) -> np.ndarray:
    """(N, width) features of uint8 `images` from the pretrained `backbone`, frozen: the mean of each of its feature
    stages' maps, side by side (EfficientNet-Lite0: 16 + 24 + 40 + 112 + 320 = 512), so the textures the early stages
    see (age shows there) count beside the shapes of the last. `weights`: a local .pth/.safetensors, or the file
    `maskops fetch-models` provisioned in the models folder (a PretrainedMissingError naming the command when it is
    not there). Nothing is downloaded."""
    import torch

    from maskops.data import normalize
    from maskops.models import create_backbone
    from maskops.pretrained import provisioned_file
    from maskops.settings import Settings
    from maskops.train import resolve_device

    where = resolve_device(device)
    net = create_backbone(backbone, pretrained_file=weights or provisioned_file(Settings.from_env().models, backbone))
    if not hasattr(net, "forward_intermediates") or not getattr(net, "feature_info", None):
        raise ValueError(f"probe_backbone {backbone!r} does not show timm its feature stages (forward_intermediates): "
                         "choose a timm CNN such as efficientnet_lite0")  # fmt: skip
    net = net.to(where, memory_format=torch.channels_last).eval()
    stages, out = len(net.feature_info), []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = normalize(images[start : start + batch_size].to(where)).contiguous(memory_format=torch.channels_last)
            maps = net.forward_intermediates(x, indices=stages, intermediates_only=True)
            out.append(torch.cat([m.float().mean(dim=(2, 3)) for m in maps], dim=1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, sum(f["num_chs"] for f in net.feature_info)), dtype=np.float32)


def probe_out_of_fold(
    features: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray,
    c: float = 0.1,
    on_fold: Callable[[int, dict[str, float]], None] | None = None,
    ages: np.ndarray | None = None,
    people: np.ndarray | None = None,
) -> OutOfFold:
    """out_of_fold's answer from fixed `features` (N, width): per fold, one logistic regression per field (mask,
    gender, age group; standardized features, inverse L2 strength `c`) fitted on the other folds' photos, and the
    held-out photos' 18 probabilities as the product of their three fields' (rank_labels reads only the fields).
    With `ages` and `people`, each held-out person's age from the same features (fit_age). `on_fold` gets each
    fold's held-out macro F1 over the 18 classes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from maskops.metrics import macro_f1_fast

    features, labels, folds = np.asarray(features, dtype=np.float64), np.asarray(labels, dtype=int), np.asarray(folds)
    fields = np.unravel_index(labels, FIELD_SIZES)  # mask, gender, age group of every photo
    out = np.zeros((len(labels), 18), dtype=np.float64)
    shown = np.zeros(len(labels), dtype=np.float64) if ages is not None else None
    for fold in sorted(set(folds.tolist())):
        held, parts = folds == fold, []
        for values, n in zip(fields, FIELD_SIZES, strict=True):
            p = np.zeros((int(held.sum()), n))
            seen = np.unique(values[~held])
            if len(seen) == 1:  # every other fold carries one value: nothing to tell apart
                p[:, seen[0]] = 1.0
            else:
                model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
                model.fit(features[~held], values[~held])
                p[:, model.classes_] = model.predict_proba(features[held])
            parts.append(p)
        out[held] = np.einsum("ni,nj,nk->nijk", *parts).reshape(-1, 18)
        if shown is not None:
            shown[held] = fit_age(features, np.asarray(ages, dtype=np.float64), np.asarray(people), ~held)
        if on_fold is not None:
            on_fold(int(fold), {"macro_f1": macro_f1_fast(labels[held], out[held].argmax(axis=1))})
    return OutOfFold(out, shown)


def opinions(
    photos: pd.DataFrame,
    open_rgb: Callable[[str], Image.Image],
    settings: LabelIssuesConfig,
    device: str = "auto",
    on_fold: Callable[[int, dict[str, float]], None] | None = None,
) -> OutOfFold:
    """The out-of-fold opinions on `photos` (crop_path, class_id, fold, profile_id, and age when the age is judged)
    by `settings.method`: probes on frozen pretrained features, or small networks trained per fold."""
    from maskops.data import decode_all

    labels, folds = photos["class_id"].to_numpy(), photos["fold"].to_numpy()
    judged = settings.judge_age and "age" in photos.columns
    ages, people = (photos["age"].to_numpy(), photos["profile_id"].to_numpy()) if judged else (None, None)
    if settings.method == "probe":
        images = decode_all(list(photos["crop_path"]), open_rgb, settings.probe_image_size)
        features = frozen_features(images, settings.probe_backbone, settings.probe_weights, device)
        return probe_out_of_fold(features, labels, folds, settings.probe_c, on_fold, ages, people)
    cfg = settings.train_config(device)
    images = decode_all(list(photos["crop_path"]), open_rgb, cfg.image_size)
    return out_of_fold(images, labels, folds, cfg, on_fold, ages, people)


def fit_age(features: np.ndarray, ages: np.ndarray, people: np.ndarray, fit_on: np.ndarray) -> np.ndarray:
    """The ages of the images outside `fit_on`, from a ridge regression (alpha by leave-one-out) of the recorded age
    on each person's mean features, fitted on the people of `fit_on` twice: the second time without the ages the
    first fit misses by more than 3 robust spreads (the wrong ones it can see). One value per person."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = pd.DataFrame(features).groupby(people, sort=True)
    means = frame.mean()
    recorded = pd.Series(ages).groupby(people, sort=True).first().reindex(means.index).to_numpy()
    train = pd.Series(fit_on).groupby(people, sort=True).all().reindex(means.index).to_numpy()
    x, keep = means.to_numpy(), train.copy()
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-1, 5, 13)))
    for _ in range(2):
        model.fit(x[keep], recorded[keep])
        residual = recorded - model.predict(x)
        spread = max(1.0, 1.4826 * float(np.median(np.abs(residual[train]))))
        keep = train & (np.abs(residual) <= 3 * spread)
    per_person = pd.Series(model.predict(x), index=means.index)
    return per_person.reindex(people[~np.asarray(fit_on)]).to_numpy()
