"""The demo's reviewer: it plays the human who checks labels, so `make demo` needs no one at the keyboard.

It writes labels/corrections.csv from part of the synthetic data's injected-noise ground
truth (a real team catches most but not all errors) and a small labels/exclusions.csv,
so the relabeled and cleaned variants really differ from the raw one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from maskops.cleaning import EXCLUSION_COLUMNS
from maskops.corrections import CORRECTION_COLUMNS
from maskops.files import write_csv_atomic
from maskops.synth.people import TRUTH_DIR

REVIEWER = "demo reviewer"


def ground_truth_corrections(dataset_root: str | Path) -> pd.DataFrame:
    """Every injected label error of a synthetic dataset, written as corrections (the perfect reviewer)."""
    noise = pd.read_csv(Path(dataset_root) / TRUTH_DIR / "label_noise.csv", dtype=str, keep_default_na=False)
    rows = [
        {"profile_id": r.profile_id, "stem": r.image_id.split("/", 1)[1] if r.image_id else "", "field": r.field, "value": r.true, "reason": "ground truth"}
        for r in noise.itertuples()
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=list(CORRECTION_COLUMNS))
    return table.assign(line=range(2, len(table) + 2))


def demo_review(
    dataset_root: str | Path, labels_dir: str | Path, catch_rate: float = 0.7, excluded_profiles: int = 2, seed: int = 0
) -> dict[str, int]:
    """Write corrections.csv and exclusions.csv for a synthetic dataset, unless they exist.

    Existing files are never overwritten: they may hold a person's work.
    """
    root, labels = Path(dataset_root), Path(labels_dir)
    noise_file = root / TRUTH_DIR / "label_noise.csv"
    if not noise_file.is_file():
        raise FileNotFoundError(f"{noise_file} not found: the demo reviewer only works on data made by `maskops synth`")
    noise = pd.read_csv(noise_file, dtype=str, keep_default_na=False)
    rng = np.random.default_rng(seed)
    written = {"corrections": 0, "exclusions": 0, "caught_profiles": 0, "noisy_profiles": int(noise["profile_id"].nunique())}

    corrections_path = labels / "corrections.csv"
    if not corrections_path.exists():
        profiles = sorted(noise["profile_id"].unique())
        caught = set(rng.choice(profiles, size=round(catch_rate * len(profiles)), replace=False)) if profiles else set()
        rows = []
        for r in noise[noise["profile_id"].isin(caught)].itertuples():
            stem = r.image_id.split("/", 1)[1] if r.image_id else ""
            reason = {"gender": "looks like the other gender in every photo", "age": f"looks {r.true}, not {r.recorded}",
                      "mask": "incorrect_mask and normal files swapped"}[r.field]  # fmt: skip
            rows.append({"profile_id": r.profile_id, "stem": stem, "field": r.field, "value": r.true, "reason": f"{REVIEWER}: {reason}"})
        write_csv_atomic(pd.DataFrame(rows, columns=list(CORRECTION_COLUMNS)), corrections_path)
        written |= {"corrections": len(rows), "caught_profiles": len(caught)}

    exclusions_path = labels / "exclusions.csv"
    if not exclusions_path.exists():
        train = pd.read_csv(root / "train/train.csv", dtype=str)
        clean = sorted(set(train["path"]) - set(noise["profile_id"]))
        chosen = rng.choice(clean, size=min(excluded_profiles, len(clean)), replace=False) if clean else []
        rows = [{"profile_id": p, "stem": "", "reason": f"{REVIEWER}: face half out of frame in several photos"} for p in sorted(chosen)]
        write_csv_atomic(pd.DataFrame(rows, columns=list(EXCLUSION_COLUMNS)), exclusions_path)
        written["exclusions"] = len(rows)
    return written
