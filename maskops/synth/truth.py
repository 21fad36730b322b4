"""What a synthetic dataset's labels should be: `maskops synth` keeps its answers in ground_truth/
(people.csv: every person's true gender and age; label_noise.csv: every injected error), so the
label errors still present in a set of labels can be listed — to score label_issues against them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from maskops.labels import STEM_MASK, Gender, MaskState, age_group_array
from maskops.synth.people import TRUTH_DIR


def remaining_errors(dataset_root: str | Path, labels: pd.DataFrame) -> dict[str, set] | None:
    """The wrong labels among `labels` (profile_id, stem, mask, gender, age_group per photo) of the synthetic
    dataset at `dataset_root`: person ids for gender and age_group, (profile_id, stem) for mask.
    None when the dataset keeps no ground truth (a real one)."""
    truth = Path(dataset_root) / TRUTH_DIR
    if not (truth / "people.csv").is_file() or not (truth / "label_noise.csv").is_file():
        return None
    people = pd.read_csv(truth / "people.csv", dtype={"profile_id": str}).set_index("profile_id")
    noise = pd.read_csv(truth / "label_noise.csv", dtype=str, keep_default_na=False)
    per_person = labels.drop_duplicates("profile_id").set_index("profile_id")
    missing = per_person.index.difference(people.index)
    if len(missing):
        raise ValueError(f"{truth / 'people.csv'} does not know {len(missing)} of the labelled people (e.g. {missing[0]}): "
                         "the labels are not of this synthetic dataset")  # fmt: skip
    known = people.reindex(per_person.index)
    true_gender = known["true_gender"].map(lambda g: int(Gender[g.upper()])).to_numpy()
    true_age = age_group_array(known["true_age"].to_numpy())
    swapped = {
        (r.profile_id, r.image_id.split("/", 1)[1]): int(MaskState[r.true.upper()]) for r in noise[noise["field"] == "mask"].itertuples()
    }
    true_mask = [swapped.get((p, s), int(STEM_MASK[s])) for p, s in zip(labels["profile_id"], labels["stem"], strict=True)]
    wrong_mask = labels["mask"].to_numpy(dtype=int) != true_mask
    return {
        "gender": set(per_person.index[per_person["gender"].to_numpy(dtype=int) != true_gender]),
        "age_group": set(per_person.index[per_person["age_group"].to_numpy(dtype=int) != true_age]),
        "mask": set(zip(labels.loc[wrong_mask, "profile_id"], labels.loc[wrong_mask, "stem"], strict=True)),
    }
