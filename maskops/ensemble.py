"""Soft voting: the ensemble averages the members' class probabilities (never raw logits),
each member having seen the image through its own preprocessing; and the side-by-side
evaluation of the ensemble and its members on the shared validation people."""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from maskops.calibration import apply_temperature, cross_fitted, expected_calibration_error, fit_temperature, reliability
from maskops.crop import CropRecipe, CropRecipeError
from maskops.figures import comparison_png, confusion_grid_png, confusion_png, reliability_png
from maskops.labels import CLASS_NAMES
from maskops.metrics import confusion, evaluate, macro_f1_fast
from maskops.options import option

if TYPE_CHECKING:
    import torch

WEIGHTINGS = ("equal", "fitted")


@dataclass(frozen=True)
class EnsembleConfig:
    weights: str = option("equal", "'equal', or 'fitted' on the validation people (a grid over the simplex; scored cross-fitted).")
    temperature: bool = option(
        False, "Scale each member's probabilities by a temperature fitted on the validation people before voting (scored cross-fitted)."
    )
    tta: bool = option(False, "Average in the horizontally flipped crop.")
    promotion_margin: float = option(0.0, "Becomes champion if its validation macro F1 >= the champion's minus this margin.")
    member_margin: float = option(
        0.0, "The soft vote is served only if its validation macro F1 >= its best member's minus this; else that member alone."
    )
    member_confidence: float = option(
        0.9,
        "...unless the best member beats the vote in fewer than this share of bootstrap resamples of the validation people "
        "(noise, not a better model): then the vote still serves. 0: the plain comparison.",
    )

    def __post_init__(self) -> None:
        if self.weights not in WEIGHTINGS:
            raise ValueError(f"weights must be one of {WEIGHTINGS}, got {self.weights!r}")
        if not 0 <= self.member_confidence <= 1:
            raise ValueError(f"member_confidence is a share of resamples, between 0 and 1; got {self.member_confidence}")


def soft_vote(
    probabilities: Sequence[np.ndarray], weights: Sequence[float] | None = None, temperatures: Sequence[float] | None = None
) -> np.ndarray:
    """Weighted mean of (N, 18) probability arrays, each first scaled by its temperature (maskops.calibration);
    equal weights and no scaling by default. Rows sum to 1."""
    if temperatures is not None:
        if len(temperatures) != len(probabilities):
            raise ValueError(f"need one temperature per member ({len(probabilities)}), got {len(temperatures)}")
        probabilities = [p if t == 1 else apply_temperature(p, t) for p, t in zip(probabilities, temperatures, strict=True)]
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in probabilities])
    if stack.ndim != 3 or stack.shape[2] != 18:
        raise ValueError(f"expected members' (N, 18) probabilities, got shape {stack.shape}")
    w = np.ones(len(stack)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(w) != len(stack) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"need one non-negative weight per member ({len(stack)}), not all zero; got {list(w)}")
    mixed = np.tensordot(w / w.sum(), stack, axes=1)
    return mixed / mixed.sum(axis=1, keepdims=True)


def fit_weights(probabilities: Sequence[np.ndarray], y_true: np.ndarray, step: float = 0.1) -> tuple[list[float], float]:
    """Weights on a simplex grid that maximise validation macro F1 (ties: the most even weights). Scored with
    macro_f1_fast, evaluate()'s macro F1 without sklearn's per-call overhead: 286 grid points for four members, each
    ~9 ms through sklearn (2.6 s a fit, and the cross-fitted score fits again per half)."""
    members = len(probabilities)
    ticks = round(1 / step)
    y_true = np.asarray(y_true, dtype=np.int64)
    best, best_score = [1 / members] * members, macro_f1_fast(y_true, soft_vote(probabilities).argmax(axis=1))
    for combo in itertools.product(range(ticks + 1), repeat=members - 1):
        rest = ticks - sum(combo)
        if rest < 0:
            continue
        w = [c / ticks for c in (*combo, rest)]
        score = macro_f1_fast(y_true, soft_vote(probabilities, w).argmax(axis=1))
        if score > best_score + 1e-12:
            best, best_score = w, score
    return best, best_score


def member_probabilities(model, images: torch.Tensor, tta: bool = False, batch_size: int = 64) -> np.ndarray:
    """(N, 18) probabilities of one member on uint8 crops already at its input size; `tta` averages
    the horizontally flipped image in."""
    from maskops.train import predict

    probs = predict(model, images, batch_size)
    if tta:
        probs = (probs + predict(model, images.flip(-1), batch_size)) / 2
    return probs


def validation_set_id(image_ids: Sequence[str], class_ids: Sequence[int]) -> str:
    """Names a validation set (its images and their labels): scores compare only on the same one."""
    text = "\n".join(f"{i}:{c}" for i, c in zip(image_ids, class_ids, strict=True))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def shared_recipe(recipes: Mapping[str, str]) -> CropRecipe:
    """The crop recipe (JSON) every member was trained on; raises, naming the members, when they differ."""
    distinct = sorted(set(recipes.values()))
    if len(distinct) != 1:
        groups = {r: [m for m, v in recipes.items() if v == r] for r in distinct}
        listed = "; ".join(f"{', '.join(members)}: {CropRecipe.from_json(r).key_params()}" for r, members in groups.items())
        raise CropRecipeError(
            f"the members were trained on crops made with different settings ({listed}); one registered model serves one crop "
            "pipeline, so re-materialize the cropped assets with the same settings and retrain"
        )
    return CropRecipe.from_json(distinct[0])


@dataclass
class EnsembleEvaluation:
    """The ensemble and every member on the same validation people."""

    names: list[str]  # the members', then "ensemble"
    weights: list[float]  # fitted on every validation person: what a registered version serves
    temperatures: list[float]  # likewise, one per member (1.0: not scaled)
    probabilities: np.ndarray  # the ensemble's (N, 18), as scored (cross-fitted when anything was fitted)
    table: pd.DataFrame  # model, macro_f1, accuracy, mask_f1, gender_f1, age_f1 — one row per member, then the ensemble
    matrices: dict[str, np.ndarray]
    calibration: pd.DataFrame  # model, temperature, ece, ece_scaled (cross-fitted temperature)
    reliability: dict[str, pd.DataFrame]  # per model (maskops.calibration.reliability)
    scoring: str  # how the ensemble's score was obtained
    member_probabilities: list[np.ndarray] = field(default_factory=list)  # as scored, one (N, 18) per member
    y_true: np.ndarray | None = None
    groups: list[str] | None = None  # the validation items' people

    @property
    def ensemble_metrics(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.table.iloc[-1].items() if k != "model"}

    @property
    def member_metrics(self) -> list[dict]:
        return self.table.iloc[:-1].to_dict("records")

    @functools.cached_property
    def figures(self) -> dict[str, bytes]:
        """The PNG charts, rendered once (the ensemble's page and its MLflow run both show them)."""
        return {
            "comparison_chart.png": comparison_png(list(self.table["model"]), list(self.table["macro_f1"])),
            "confusion_matrix.png": confusion_png(self.matrices["ensemble"], "ensemble: validation"),
            "confusion_matrices.png": confusion_grid_png(self.matrices),
            "reliability_diagram.png": reliability_png(self.reliability),
        }

    def tables(self) -> dict[str, pd.DataFrame]:
        """comparison.csv and one confusion matrix per model (rows: true class)."""
        out = {"comparison.csv": self.table, "calibration.csv": self.calibration}
        for name, matrix in self.matrices.items():
            out[f"confusion_{name.replace('/', '_')}.csv"] = pd.DataFrame(
                matrix, index=pd.Index(CLASS_NAMES, name="true"), columns=CLASS_NAMES
            )
        return out


@dataclass(frozen=True)
class Serving:
    """What the registered version serves: the soft vote of every member when it earned it, else the best member alone."""

    members: list[int]  # indices into the evaluated members
    weights: list[float]
    temperatures: list[float]
    score: float  # the served model's validation macro F1
    soft_vote_score: float
    best_member: str
    best_member_score: float
    margin: float
    earned: bool  # the soft vote scored >= the best member - margin, or the best member's lead is within the noise
    reason: str
    metrics: dict[str, float]  # the served model's validation metrics
    member_wins: float | None = None  # share of bootstrap resamples of the validation people in which the best member beat the vote

    def as_dict(self) -> dict:
        return asdict(self)


def member_wins(evaluation: EnsembleEvaluation, member: int, draws: int = 1000, seed: int = 0) -> float | None:
    """Share of bootstrap resamples of the validation *people* (whole people, with replacement) in which `member`'s
    macro F1 beats the soft vote's — how sure the validation set is that the member is better. None without people."""
    if evaluation.groups is None or evaluation.y_true is None or not evaluation.member_probabilities:
        return None
    people, index = np.unique(np.asarray(evaluation.groups, dtype=str), return_inverse=True)
    rows = [np.flatnonzero(index == k) for k in range(len(people))]
    y, alone, vote = evaluation.y_true, evaluation.member_probabilities[member].argmax(1), evaluation.probabilities.argmax(1)
    rng = np.random.default_rng(seed)
    wins = 0
    for _ in range(draws):
        take = np.concatenate([rows[k] for k in rng.integers(0, len(people), len(people))])
        wins += macro_f1_fast(y[take], alone[take]) > macro_f1_fast(y[take], vote[take])
    return wins / draws


def choose_serving(evaluation: EnsembleEvaluation, margin: float, confidence: float = 0.0) -> Serving:
    """The soft vote when its validation macro F1 is at least its best member's minus `margin`, or when the best member
    beats it in fewer than `confidence` of bootstrap resamples of the validation people (a lead within the noise);
    otherwise the best member as a one-member ensemble, so the champion never serves something clearly worse than one
    of its own members."""
    members = evaluation.member_metrics
    best = max(range(len(members)), key=lambda i: members[i]["macro_f1"])
    vote, top, name = float(evaluation.ensemble_metrics["macro_f1"]), float(members[best]["macro_f1"]), members[best]["model"]
    wins = member_wins(evaluation, best) if confidence > 0 and vote < top - margin - 1e-9 else None
    if vote >= top - margin - 1e-9 or (wins is not None and wins < confidence):
        why = (f"soft vote {vote:.4f} >= best member {name} {top:.4f} - margin {margin}" if wins is None else
               f"soft vote {vote:.4f} < best member {name} {top:.4f}, but {name} beats it in only {wins:.0%} of bootstrap resamples of "
               f"the validation people (< {confidence:.0%}: within the noise)")  # fmt: skip
        return Serving(list(range(len(members))), list(evaluation.weights), list(evaluation.temperatures), vote, vote, name, top, margin,
                       True, f"{why}: the soft vote of every member serves", evaluation.ensemble_metrics, wins)  # fmt: skip
    clearly = "" if wins is None else f", and beats it in {wins:.0%} of bootstrap resamples of the validation people"
    reason = f"soft vote {vote:.4f} < best member {name} {top:.4f} - margin {margin}{clearly}: {name} serves alone"
    metrics = {k: float(v) for k, v in members[best].items() if k != "model"}
    return Serving([best], [1.0], [evaluation.temperatures[best]], top, vote, name, top, margin, False, reason, metrics, wins)


def evaluate_ensemble(
    names: Sequence[str],
    member_probs: Sequence[np.ndarray],
    y_true: np.ndarray,
    weighting: str,
    groups: Sequence[str] | None = None,
    temperature: bool = False,
) -> EnsembleEvaluation:
    """Soft voting (equal or fitted weights, optionally on temperature-scaled members) scored beside every member,
    with every model's calibration. What is fitted (weights, temperatures) is fitted on every validation person for
    serving, but scored cross-fitted on the people `groups` (one id per item): fitted on one half, scored on the other."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weights must be one of {WEIGHTINGS}, got {weighting!r}")
    y_true, members = np.asarray(y_true), [np.asarray(p, dtype=np.float64) for p in member_probs]
    for name, p in zip(names, members, strict=True):  # one NaN spreads through every vote (0 x NaN is NaN)
        if not np.isfinite(p).all():
            bad = int((~np.isfinite(p)).any(axis=1).sum())
            raise ValueError(f"{name}'s probabilities are not finite on {bad} of {len(p)} validation images: retrain it or leave it out")
    fits = weighting == "fitted" or temperature
    if groups is None and fits:
        raise ValueError("fitted weights or temperatures are scored on people they were not fitted on: pass the items' person ids (groups)")

    def fit(rows: np.ndarray) -> tuple[list[float], list[float]]:
        temps = [fit_temperature(p[rows], y_true[rows]) if temperature else 1.0 for p in members]
        weights = fit_weights([apply_temperature(p[rows], t) for p, t in zip(members, temps, strict=True)], y_true[rows])[0] \
            if weighting == "fitted" else [1.0] * len(members)  # fmt: skip
        return temps, weights

    def vote(fitted: tuple[list[float], list[float]], rows: np.ndarray) -> np.ndarray:
        return soft_vote([p[rows] for p in members], fitted[1], fitted[0])

    everyone = np.ones(len(y_true), dtype=bool)
    temps, weights = fit(everyone)
    voted = cross_fitted(groups, fit, vote) if fits else None
    if voted is not None:
        scoring = "cross-fitted: weights/temperatures fitted on one half of the validation people, scored on the other, and the reverse"
    else:
        voted = vote((temps, weights), everyone)
        scoring = "in-sample: fewer than two validation people to cross-fit on" if fits else "nothing fitted"
    models, probabilities = [*names, "ensemble"], [*members, voted]
    table = pd.DataFrame([{"model": m, **evaluate(y_true, p)} for m, p in zip(models, probabilities, strict=True)])
    matrices = {m: confusion(y_true, p) for m, p in zip(models, probabilities, strict=True)}
    fitted = [*(temps if temperature else [None] * len(members)), None]  # temperatures already fitted on everyone, reused
    calibration = pd.DataFrame([_calibration(m, p, y_true, groups, t) for m, p, t in zip(models, probabilities, fitted, strict=True)])
    curves = {m: reliability(p, y_true) for m, p in zip(models, probabilities, strict=True)}
    return EnsembleEvaluation(models, [float(w) for w in weights], [float(t) for t in temps], voted, table, matrices, calibration, curves,
                              scoring, members, y_true, None if groups is None else [str(g) for g in groups])  # fmt: skip


def _calibration(model: str, probs: np.ndarray, y_true: np.ndarray, groups: Sequence[str] | None, temperature: float | None) -> dict:
    """One model's ECE as it is and after a temperature fitted on the other half of the people; `temperature`: the one
    fitted on everyone, when already known."""
    scaled = None if groups is None else cross_fitted(groups, lambda rows: fit_temperature(probs[rows], y_true[rows]),
                                                      lambda t, rows: apply_temperature(probs[rows], t))  # fmt: skip
    temperature = fit_temperature(probs, y_true) if temperature is None else temperature
    return {"model": model, "temperature": temperature, "ece": expected_calibration_error(probs, y_true),
            "ece_scaled": expected_calibration_error(scaled, y_true) if scaled is not None else float("nan")}  # fmt: skip


def fill_answers(order: Sequence[str], answered: Sequence[str], probabilities: np.ndarray) -> tuple[pd.DataFrame, list[str], int]:
    """The submission table (ImageID, ans) in `order`; images without a prediction get the most frequent answer.
    Returns the table, the images that had none, and the class they got."""
    answers = dict(zip(answered, probabilities.argmax(axis=1).tolist(), strict=True))
    fallback = int(np.bincount(probabilities.argmax(axis=1), minlength=18).argmax()) if len(answered) else 0
    missing = [i for i in order if i not in answers]
    table = pd.DataFrame({"ImageID": list(order), "ans": [answers.get(i, fallback) for i in order]}).astype({"ans": "int64"})
    return table, missing, fallback
