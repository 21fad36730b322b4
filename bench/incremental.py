"""Incremental recompute: re-materializing the data graph after 5% new profiles arrive.

    .venv/bin/python bench/incremental.py [--profiles 40]

Materializes every data asset (raw -> relabeled -> split -> cleaned -> generated -> *_crops,
real u2netp and MTCNN) on a synthetic dataset, adds 5% more people (drawn by the same seed,
so the others stay byte-identical), and materializes again on the same instance.
incremental_vs_full: seconds of the second run / seconds of the first. Target <= 0.10.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit

from assets.cropped import VARIANTS
from assets.definitions import data_assets
from assets.sources import sources
from maskops.background import fetch_u2netp
from maskops.settings import Settings
from maskops.synth.people import SynthConfig, synthesize
from maskops.synth.reviewer import demo_review
from resources import BackgroundRemoverResource, build_resources

ASSETS = [sources, *data_assets]


def processed(result: dg.ExecuteInProcessResult) -> dict[str, int]:
    out = {}
    for event in result.get_asset_materialization_events():
        meta = event.materialization.metadata
        if "processed_images" in meta:
            out[event.asset_key.to_user_string()] = meta["processed_images"].value
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", type=int, default=40)
    parser.add_argument("--eval-profiles", type=int, default=4)
    args = parser.parse_args()
    extra = max(1, round(0.05 * args.profiles))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = SynthConfig(profiles=args.profiles, eval_profiles=args.eval_profiles, seed=21)
        synthesize(tmp / "data", base)
        synthesize(tmp / "bigger", SynthConfig(**{**base.__dict__, "profiles": args.profiles + extra}))
        settings = Settings.from_env({"MASKOPS_HOME": str(tmp / "state"), "MASKOPS_DATASET": str(tmp / "data")})
        demo_review(settings.dataset, settings.labels)
        shared = Settings.from_env().models  # reuse the provisioned model file
        fetch_u2netp(shared)
        resources = build_resources(settings)
        resources["background_remover"] = BackgroundRemoverResource(models_dir=str(shared))
        instance = dg.DagsterInstance.ephemeral()

        start = time.perf_counter()
        full = dg.materialize(ASSETS, resources=resources, instance=instance)
        full_s = time.perf_counter() - start
        assert full.success

        train = pd.read_csv(tmp / "bigger/train/train.csv", dtype=str)
        for folder in train["path"].iloc[args.profiles :]:
            shutil.copytree(tmp / "bigger/train/images" / folder, tmp / "data/train/images" / folder)
        shutil.copy(tmp / "bigger/train/train.csv", tmp / "data/train/train.csv")

        start = time.perf_counter()
        incremental = dg.materialize(ASSETS, resources=resources, instance=instance)
        inc_s = time.perf_counter() - start
        assert incremental.success
        emit("incremental_vs_full", inc_s, "s", baseline=full_s, n=7 * (args.profiles + extra), target="<= 0.10",
             new_images=7 * extra, processed_full=processed(full), processed_incremental=processed(incremental),
             variants=list(VARIANTS))  # fmt: skip


if __name__ == "__main__":
    main()
