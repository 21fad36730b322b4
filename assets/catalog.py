"""The catalog a team reads: asset groups that follow the flow, who owns each, tags to filter on, and how fresh the
models must stay. Every asset takes its group, owners and tags from here (`catalog()`), so the UI's groups, owner
filter and tag filter say the same thing everywhere.

    inputs    the dataset folder and the human-edited label files (sources), and the label tables read from them
    datasets  the manifests: raw, evaluation, relabeled, cleaned, generated, and the profile split
    crops     face crops (background removed) of every variant and of the evaluation set
    models    one model per dataset variant (an MLflow run and a registered version each)
    serving   the ensemble (the champion/challenger decision) and the submission
    review    label_issues, the suspects the review page (`maskops review`) goes through

Owners are teams, to be renamed to yours (`team:<name>` or an e-mail address).
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

INPUTS, DATASETS, CROPS, MODELS, SERVING, REVIEW = "inputs", "datasets", "crops", "models", "serving", "review"
OWNERS = {
    INPUTS: ["team:labeling"],
    DATASETS: ["team:data"],
    CROPS: ["team:data"],
    MODELS: ["team:modeling"],
    SERVING: ["team:modeling"],
    REVIEW: ["team:labeling"],
}
DOMAIN_TAG = {"domain": "face-attributes"}

# The weekly challenger retrains every Monday: a model or ensemble older than a week missed a retraining (warn),
# older than two weeks missed two (fail).
WEEKLY = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=15), warn_window=timedelta(days=8))


def catalog(group: str, **tags: str) -> dict:
    """group_name, owners and tags of an asset of `group`; `tags` adds e.g. variant='relabeled'."""
    return {"group_name": group, "owners": OWNERS[group], "tags": {**DOMAIN_TAG, "stage": group, **tags}}
