"""Champion / challenger in the MLflow model registry: the alias `champion` moves to a new
version only if it scores at least as well on the same validation people."""

from collections.abc import Callable
from dataclasses import asdict, dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tracking.service import is_not_found

F1_TAG = "maskops.val_macro_f1"
VALIDATION_TAG = "maskops.validation_set"
MEMBERS_TAG = "maskops.members"
DECISION_TAG = "maskops.decision"  # promoted | not promoted
PROMOTION_TAG = "maskops.promotion"  # why, in one short line
TIE = 1e-6  # scores this close count as equal (tags keep 6 decimals)


def champion_version(client: MlflowClient, name: str):
    """The version holding the alias `champion`, or None when there is none (or no such model yet)."""
    try:
        aliases = client.get_registered_model(name).aliases
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise
    version = aliases.get("champion")
    return None if version is None else client.get_model_version(name, str(version))


@dataclass(frozen=True)
class Promotion:
    decision: str  # "champion" or "challenger"
    version: str
    score: float
    champion_version: str | None  # the champion before this decision
    champion_score: float | None  # on the same validation people
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def short_reason(self) -> str:
        """Why, in a line short enough for a tag column: the scores compared."""
        if self.champion_version is None:
            return f"first champion, validation macro F1 {self.score:.4f}"
        return f"{self.score:.4f} vs champion v{self.champion_version} {self.champion_score:.4f}"

    def sentence(self) -> str:
        """The decision for a person, for the version's description."""
        became = "became **champion**" if self.decision == "champion" else "is the **challenger** (the champion stays)"
        return f"Promotion: v{self.version} {became}. {self.reason[0].upper()}{self.reason[1:]}."


def record_promotion(client: MlflowClient, name: str, promotion: Promotion) -> None:
    """The decision on the version: short tags (decision, scores) and a sentence appended to its description."""
    version = promotion.version
    client.set_model_version_tag(name, version, DECISION_TAG, "promoted" if promotion.decision == "champion" else "not promoted")
    client.set_model_version_tag(name, version, PROMOTION_TAG, promotion.short_reason)
    described = client.get_model_version(name, version).description or ""
    kept = described.split("\n\nPromotion: ")[0]  # a decision made again replaces the earlier one
    client.update_model_version(name, version, description=f"{kept}\n\n{promotion.sentence()}".strip())


def promote(
    client: MlflowClient,
    name: str,
    version: str,
    score: float,
    validation_set: str,
    margin: float = 0.0,
    rescore: Callable[[dict], float] | None = None,
) -> Promotion:
    """Give `version` the alias champion if `score` >= the champion's score - `margin`, else challenger.

    The champion's score comes from its tag when it was measured on the same validation set;
    otherwise `rescore(champion_tags)` measures it again on the current one (if given).
    A registry that cannot be read raises: only a champion that does not exist counts as none.
    """
    client.set_model_version_tag(name, version, F1_TAG, f"{score:.6f}")
    client.set_model_version_tag(name, version, VALIDATION_TAG, validation_set)
    champion = champion_version(client, name)
    if champion is None or champion.version == version:
        result = Promotion("champion", version, score, None, None, "first registered version")
    else:
        tags = champion.tags
        if tags.get(VALIDATION_TAG) == validation_set and F1_TAG in tags:
            champion_score, how = float(tags[F1_TAG]), "its recorded score"
        elif rescore is not None:
            try:
                champion_score, how = float(rescore(tags)), "re-scored on the current validation people"
            except MlflowException as exc:  # a member version deleted since: it cannot be measured, nor kept by default
                if not is_not_found(exc):
                    raise
                champion_score, how = float("-inf"), f"cannot be re-scored: {str(exc).splitlines()[0][:160]}"
        else:
            champion_score, how = float("-inf"), "no comparable score"
        better = score >= champion_score - margin - TIE
        reason = (f"validation macro F1 {score:.4f} vs champion v{champion.version} {champion_score:.4f} ({how}), margin {margin}: "
                  + ("promoted" if better else "kept the champion"))  # fmt: skip
        result = Promotion("champion" if better else "challenger", version, score, champion.version, champion_score, reason)
    client.set_registered_model_alias(name, result.decision, version)
    record_promotion(client, name, result)
    return result
