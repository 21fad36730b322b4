"""The four variant models on the same validation people, scored against the true labels.

    make demo && .venv/bin/python bench/variants.py

Reads the demo's state (MASKOPS_HOME, default .maskops): the registered model of each variant
(from its <variant>_model record), the validation fold, the crops, and the synthetic data's
ground truth (every injected label error, not just the 70% the demo reviewer caught). Prints
each model's validation macro F1 on clean labels, as a ratio to the raw model's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit

from maskops.corrections import apply_corrections, parse_corrections
from maskops.data import decode_all
from maskops.metrics import evaluate
from maskops.settings import Settings
from maskops.splits import VALIDATION, assign_split
from maskops.store import ImageSource, ImageStore
from maskops.synth.reviewer import ground_truth_corrections
from maskops.train import predict
from maskops.variants import VARIANTS, model_name


def main() -> None:
    from tracking.service import TrackingService

    settings = Settings.from_env()
    records = {v: settings.records / f"{model_name(v)}.json" for v in VARIANTS}
    missing = [str(p) for p in records.values() if not p.exists()]
    if missing:
        raise SystemExit(f"no trained models in {settings.home} ({missing[0]} missing): run `make demo` first")
    raw = pd.read_parquet(settings.manifests / "raw_dataset.parquet")
    truth = apply_corrections(raw, parse_corrections(ground_truth_corrections(settings.dataset), raw, "ground truth"))
    crops = pd.read_parquet(settings.manifests / "relabeled_crops.parquet")
    split = pd.read_parquet(settings.manifests / "profile_split.parquet")
    val = assign_split(crops[crops["crop_path"].notna()], split)
    val = val[val["role"] == VALIDATION].reset_index(drop=True)
    clean = val["image_id"].map(truth.set_index("image_id")["class_id"]).to_numpy()
    relabeled = val["class_id"].to_numpy()
    source = ImageSource(settings.dataset, ImageStore(settings.image_store))
    service = TrackingService(settings.mlflow_uri)
    scores = {}
    for variant, path in records.items():
        record = json.loads(path.read_text())
        model = service.load_pytorch(record["model_uri"])
        probs = predict(model, decode_all(list(val["crop_path"]), source.open_rgb, int(record["image_size"])))
        scores[variant] = (evaluate(clean, probs), evaluate(relabeled, probs), record["model_uri"])
    for variant, (on_clean, on_relabeled, uri) in scores.items():
        emit(f"val_macro_f1_clean_labels/{variant}", on_clean["macro_f1"], "macro F1", baseline=scores["raw"][0]["macro_f1"], n=len(val),
             on_relabeled_labels=round(on_relabeled["macro_f1"], 4), age_f1=round(on_clean["age_f1"], 4), model=uri,
             labels_differing_from_relabeled=int(np.sum(clean != relabeled)))  # fmt: skip


if __name__ == "__main__":
    main()
