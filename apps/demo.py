"""`maskops demo`: draw the synthetic dataset, play the reviewer, provision the models offline and
materialize every asset of the code location — then say where everything went."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

from apps.launch import dagster
from apps.runs import failed_checks, latest_run_id, local_instance, watch_pools
from maskops.background import fetch_u2netp
from maskops.pretrained import fetch_pretrained
from maskops.settings import Settings
from maskops.synth.people import SynthConfig, synthesize
from maskops.synth.real_faces import DEMO_MASK_ONLY_FACES
from maskops.synth.reviewer import demo_review
from maskops.train_config import PRESETS
from resources.runs import sweep


def prepare_demo_data(settings: Settings, profiles: int, eval_profiles: int, seed: int, force: bool, progress: Callable) -> str:
    """The synthetic dataset and the demo reviewer's label files (unless MASKOPS_DATASET points at real data)."""
    config = SynthConfig(profiles=profiles, eval_profiles=eval_profiles, seed=seed, mask_only_faces=DEMO_MASK_ONLY_FACES)
    synthesize(settings.dataset, config, force=force, progress=progress)
    review = demo_review(settings.dataset, settings.labels, seed=seed)
    return (f"demo reviewer: {review['corrections']} corrections ({review['caught_profiles']} of {review['noisy_profiles']} noisy profiles "
            f"caught), {review['exclusions']} exclusions in {settings.labels}")  # fmt: skip


def run_demo(profiles: int, eval_profiles: int, seed: int, force: bool, progress: Callable) -> int:
    settings = Settings.from_env()
    if "MASKOPS_DATASET" not in os.environ:
        print(prepare_demo_data(settings, profiles, eval_profiles, seed, force, progress))
    fetch_u2netp(settings.models)
    fetch_pretrained(settings.models, PRESETS["demo"].backbone)  # the model assets' default preset starts from it
    command, env = dagster(settings)
    instance = local_instance(settings)
    for line in sweep(instance) if not settings.production else []:  # a demo killed earlier must not hold the pools
        print(f"maskops: {line}", flush=True)
    print(f"materializing every asset of the maskops code location (dataset: {settings.dataset})", flush=True)
    stop_watch = watch_pools(instance, lambda line: print(line, file=sys.stderr, flush=True))
    try:
        result = subprocess.run(
            [command, "job", "execute", "-m", "assets.definitions", "-a", "defs", "-j", "maskops_pipeline"], env=env, check=False
        )
    finally:
        stop_watch()
    if result.returncode != 0:
        run_id = latest_run_id(instance, "maskops_pipeline")
        for line in failed_checks(instance, run_id) if run_id else []:
            print(line, file=sys.stderr)
        print(f"the demo pipeline failed (run {run_id}); its log is above and in the Dagster UI (`make ui`)", file=sys.stderr)
        return result.returncode
    print(
        "\ndemo finished. Look at:\n"
        f"  dataset      {settings.dataset}\n"
        f"  manifests    {settings.manifests}\n"
        f"  images       {settings.image_store} (content-addressed crops and generated images)\n"
        f"  labels       {settings.labels} (corrections.csv, exclusions.csv)\n"
        f"  dagster home {settings.dagster_home} (runs, asset history)\n"
        f"  mlflow       {settings.mlflow_uri} (runs, registered models maskops-<variant>; make mlflow-ui)\n"
        f"  quality      {settings.reports / 'quality'} (maskops report)\n"
        f"  figures      {settings.figures} (charts and contact sheets the asset metadata links to)\n"
        f"  submission   {settings.submissions / 'submission.csv'}\n"
        "  predict      .venv/bin/maskops predict --model models:/maskops-ensemble@champion PHOTOS...\n"
        "  review       .venv/bin/maskops review (suspected label errors, from label_issues, on 127.0.0.1:8090)\n"
        "  serve        .venv/bin/maskops serve (the champion over HTTP on 127.0.0.1:5001)\n"
        "  the UI       make ui, then open http://127.0.0.1:3000/asset-groups"
    )
    return 0
