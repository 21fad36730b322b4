"""How well label_issues finds the label errors the synthetic data really has.

    make demo && .venv/bin/python bench/label_issues.py

The demo data keeps its answers in ground_truth/ (people.csv: true gender and age; label_noise.csv:
the swapped mask photos). The errors still in the current labels (relabeled_dataset, after the demo
reviewer's corrections) are compared with what `label_issues` flags, per field:
- label_issues_precision_<field>: flagged items that really are wrong, against the share of wrong
  items (what flagging at random would give): the ratio is the lift over chance.
- label_issues_recall_<field>: wrong items that were flagged (baseline: the share flagged).
Mask is judged per photo, gender and age group per person. Reported, no target yet.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit

from maskops.labels import Gender, MaskState, age_group_array
from maskops.settings import Settings


def main() -> None:
    settings = Settings.from_env()
    issues_path = settings.manifests / "label_issues.parquet"
    truth = settings.dataset / "ground_truth"
    if not issues_path.exists() or not truth.is_dir():
        raise SystemExit(f"{issues_path} or {truth} not found: run `make demo` first (synthetic data keeps its answers)")
    issues = pd.read_parquet(issues_path)
    labels = pd.read_parquet(settings.manifests / "relabeled_dataset.parquet")
    people = pd.read_csv(truth / "people.csv", dtype={"profile_id": str}).set_index("profile_id")
    noise = pd.read_csv(truth / "label_noise.csv", dtype=str, keep_default_na=False)

    per_person = labels.drop_duplicates("profile_id").set_index("profile_id")
    true_gender = people["true_gender"].map(lambda g: int(Gender[g.upper()])).reindex(per_person.index)
    true_age = pd.Series(age_group_array(people["true_age"].to_numpy()), index=people.index).reindex(per_person.index)
    wrong = {
        "gender": set(per_person.index[per_person["gender"].to_numpy() != true_gender.to_numpy()]),
        "age_group": set(per_person.index[per_person["age_group"].to_numpy() != true_age.to_numpy()]),
    }
    masks = noise[noise["field"] == "mask"].set_index("image_id")["true"].map(lambda m: int(MaskState[m.upper()]))
    true_mask = labels["raw_mask"].where(~labels["image_id"].isin(masks.index), labels["image_id"].map(masks))
    wrong["mask"] = set(
        zip(labels.loc[labels["mask"] != true_mask, "profile_id"], labels.loc[labels["mask"] != true_mask, "stem"], strict=True)
    )
    totals = {"gender": len(per_person), "age_group": len(per_person), "mask": len(labels)}
    for field in ("mask", "gender", "age_group"):
        rows = issues[issues["field"] == field]
        flagged = set(zip(rows["profile_id"], rows["stem"], strict=True)) if field == "mask" else set(rows["profile_id"])
        hits = len(flagged & wrong[field])
        prevalence = len(wrong[field]) / totals[field]
        precision = hits / len(flagged) if flagged else 0.0
        extra = {
            "flagged": len(flagged),
            "wrong": len(wrong[field]),
            "found": hits,
            "items": totals[field],
            "wrong_items": sorted(map(str, wrong[field])),
        }
        emit(f"label_issues_precision_{field}", precision, "share of flagged", baseline=prevalence or None, n=len(flagged), **extra)
        if wrong[field]:  # recall of nothing is undefined
            emit(f"label_issues_recall_{field}", hits / len(wrong[field]), "share of wrong", baseline=len(flagged) / totals[field] or None,
                 n=len(wrong[field]), **extra)  # fmt: skip


if __name__ == "__main__":
    main()
