"""How well label_issues (cleanlab on out-of-fold probabilities) finds the label errors the synthetic data really has.

    make demo && .venv/bin/python bench/label_issues.py

Synthetic data keeps its answers in ground_truth/; the label_issues asset scores its ranking against the errors
still in the labels it judged (after the demo reviewer's corrections) and records that in its metadata
(`against_ground_truth`, maskops.label_issues.score_against_truth). This reads the latest materialization:
- label_issues_recall_top_2k_<field>: share of the wrong labels found within the top 2 x (number wrong) of the
  ranking; baseline: what a random ranking finds there (2 x wrong / items). Target (issue 13) for person-level
  errors (gender and age group): >= 0.8 at >= 480 people.
- label_issues_precision_<field> / label_issues_recall_<field>: of what cleanlab flags; precision's baseline is the
  share of wrong labels (flagging at random), recall's the share flagged.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit

from maskops.settings import Settings


def main() -> None:
    import dagster as dg

    settings = Settings.from_env()
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    event = instance.get_latest_materialization_event(dg.AssetKey("label_issues"))
    if event is None or event.asset_materialization is None:
        raise SystemExit(f"label_issues was never materialized in {settings.dagster_home}: run `make demo` first")
    metadata = event.asset_materialization.metadata
    if "against_ground_truth" not in metadata:
        raise SystemExit("the latest label_issues judged a dataset without ground truth: run it on data made by `maskops synth`")
    for field, r in metadata["against_ground_truth"].value.items():
        extra = {k: r[k] for k in ("items", "wrong", "flagged", "flagged_wrong")}
        figures = []  # name, value, unit, baseline, n, target
        if r["wrong"]:  # recall of nothing is undefined
            figures.append(("recall_top_2k", r["recall_top_2k"], "share of wrong", min(1.0, 2 * r["wrong"] / r["items"]), r["wrong"],
                            ">= 0.8 (at >= 480 people)" if field == "person" else None))  # fmt: skip
            figures.append(("recall", r["recall"], "share of wrong", r["flagged"] / r["items"] or None, r["wrong"], None))
        if r["precision"] is not None:
            figures.append(("precision", r["precision"], "share of flagged", r["wrong"] / r["items"] or None, r["flagged"], None))
        for name, value, unit, baseline, n, target in figures:
            emit(f"label_issues_{name}_{field}", value, unit, baseline=baseline, n=n, target=target, **extra)


if __name__ == "__main__":
    main()
