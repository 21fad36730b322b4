"""What `maskops predict` pays before and while answering a few photos: load time and peak memory.

    .venv/bin/python bench/predict_load.py [--members 4] [--backbone efficientnet_lite0] [--photos 3]

A registry of its own (temporary): `--members` untrained members at 96 px (the demo's backbone by default) and the
ensemble pyfunc over them, with u2netp when `maskops fetch-models` provisioned it (else a tiny stand-in).
- predict_load_seconds / predict_peak_rss: a fresh process loads the champion and predicts `--photos` photos, the
  way `maskops predict` does now (tracking.prediction.load_model: the model's files where they are, no requirement
  scan; the members' weights stored as safetensors and rebuilt from timm) against the way it did
  (TrackingService.load_pyfunc: a copy into a temporary folder, MLflow's requirement scan, the members' pt2 graphs).
- member_load_seconds: one member's pt2 graph loaded with typing.get_type_hints memoised (what the pyfunc does) vs not.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import emit

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, time
started = time.perf_counter()
import pandas as pd
from tracking.service import TrackingService
service = TrackingService(sys.argv[2])
if sys.argv[1] == "ours":
    from tracking.prediction import load_model
    model = load_model(service, sys.argv[3])
else:
    model = service.load_pyfunc(sys.argv[3])
loaded = time.perf_counter()
out = model.predict(pd.DataFrame({"image": sys.argv[4:]}))
assert (out["status"] == "ok").all(), list(out["status"])
done = time.perf_counter()
print(json.dumps({"load": loaded - started, "predict": done - loaded, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child(way: str, tracking_uri: str, model_uri: str, photos: list[str]) -> dict:
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLFLOW_TRACKING_URI": tracking_uri,
    }  # MLflow 3 would otherwise make ./mlflow.db in the repository
    done = subprocess.run([sys.executable, "-c", CHILD, way, tracking_uri, model_uri, *photos], capture_output=True, text=True, env=env,
                          cwd=ROOT, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--photos", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each way, alternated; the fastest of each is reported")
    args = parser.parse_args()
    from PIL import Image
    from skimage import data

    from maskops.settings import Settings
    from tests.registered import register_ensemble
    from tracking.service import TrackingService

    with tempfile.TemporaryDirectory() as tmp:
        background = Settings.from_env().models / "u2netp.onnx"
        if not background.is_file():
            from tests.onnx_models import brightness_segmenter

            background = brightness_segmenter(Path(tmp) / "models" / "tiny_segmenter.onnx")
        tracking_uri = f"sqlite:///{tmp}/mlflow.db"
        service = TrackingService(tracking_uri, artifact_root=f"{tmp}/artifacts", experiment="predict-load")
        registered = register_ensemble(service, background, args.backbone, args.members, image_size=96, crop_size=256)
        before = register_ensemble(service, background, args.backbone, args.members, image_size=96, crop_size=256, alias="pt2",
                                   member_architecture=False)  # the same weights, members as pt2 graphs  # fmt: skip
        face = Image.fromarray(data.astronaut())
        photos = []
        for i in range(args.photos):
            photos.append(f"{tmp}/photo{i}.jpg")
            face.rotate(5 * i).resize((384, 512)).save(photos[-1])
        runs: dict[str, list[dict]] = {"ours": [], "baseline": []}
        for _ in range(args.repeats):
            for way in runs:
                runs[way].append(child(way, tracking_uri, (registered if way == "ours" else before).ensemble_uri, photos))
        best = {way: min(r, key=lambda x: x["load"]) for way, r in runs.items()}
        details = {"members": args.members, "backbone": args.backbone, "background": background.name, "runs": runs}
        emit("predict_load_seconds", best["ours"]["load"], "s", best["baseline"]["load"], n=args.photos, **details)
        total = {way: b["load"] + b["predict"] for way, b in best.items()}
        emit("predict_total_seconds", total["ours"], "s", total["baseline"], n=args.photos)
        emit("predict_peak_rss", best["ours"]["rss_mb"], "MB", best["baseline"]["rss_mb"], n=args.photos)
        cached, plain = member_load(service, registered.member_uris[0], tmp)
        emit("member_load_seconds", cached, "s", plain, n=1, backbone=args.backbone)


def member_load(service, member_uri: str, tmp: str) -> tuple[float, float]:
    """One member loaded with the type-hints cache vs without (each after a warm-up load, best of three)."""
    import mlflow.pytorch

    from tracking.ensemble_model import type_hints_cached

    local = service.download(member_uri, Path(tmp) / "member")
    mlflow.pytorch.load_model(str(local), map_location="cpu")
    times = {"cached": [], "plain": []}
    for _ in range(3):
        for way in times:
            start = time.perf_counter()
            if way == "cached":
                with type_hints_cached():
                    mlflow.pytorch.load_model(str(local), map_location="cpu")
            else:
                mlflow.pytorch.load_model(str(local), map_location="cpu")
            times[way].append(time.perf_counter() - start)
    return min(times["cached"]), min(times["plain"])


if __name__ == "__main__":
    main()
