"""The prepared GPU check: every CUDA path of the project, the GPU figures, and the full competition size.

On a GPU machine (README "Benchmarks", "On a GPU"), in one command with a time limit:

    bash bench/gpu_wheels.sh                      # here, once: the few pure-Python wheels the GPU machine lacks
    python3 bench/gpu_check.py --sections paths,training,crop,fullsize-data --budget 540
    python3 bench/gpu_check.py --sections fullsize-train --budget 540

Sections (results are written after each one, so a run stopped by its limit still leaves what it measured):
- paths: the training loop with augmentation on CUDA (it crashed on its first batch once), prediction, MTCNN batched
  on CUDA against the CPU, the background model run by PyTorch on CUDA against ONNX Runtime on the CPU.
- training: train loop vs compute-only (bench/training.py) for tiny_vit_21m_224 at batch 64 and 256 (224 px) and
  resnet26d at 128 px batch 128, bf16 where the GPU has it. Target >= 0.9 each.
- crop: the crop stage's images/s on the GPU (background model and MTCNN on CUDA) at batch 64.
- fullsize-data / fullsize-train: bench/pipeline.py at the competition's size (2,700 people, 258 evaluation people),
  data then training. Target: both within 10 minutes on one H100/H200.
- study: bench/study.py at 480 people (60 evaluation people), 3 seeds, pretrained EfficientNet-Lite2 (gpu-lite2, 12
  epochs): every variant and the ensemble against raw, paired by seed (issue 13's story, at a size where it can show).
`--quick` runs every section at a toy size (the CPU test in tests/test_bench.py does, on the CPU).
Writes bench/results-gpu.json (--out) with the device name; `make bench` folds it into bench/results.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from maskops.background import fetch_u2netp  # noqa: E402
from maskops.settings import Settings  # noqa: E402
from maskops.synth.real_faces import DEMO_MASK_ONLY_FACES  # noqa: E402

SECTIONS = ("paths", "training", "crop", "fullsize-data", "fullsize-train", "study")
TRAINING = (  # the three configurations: backbone, image size, batch
    ("tiny_vit_21m_224", 224, 64),
    ("tiny_vit_21m_224", 224, 256),
    ("resnet26d", 128, 128),
)


def device_info(device: str) -> dict:
    info = {"device": device, "torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count()}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        info |= {"device_name": props.name, "memory_gib": round(props.total_memory / 2**30, 1), "bf16": torch.cuda.is_bf16_supported(),
                 "cuda": torch.version.cuda}  # fmt: skip
    else:
        info["device_name"] = f"{platform.machine()} CPU"
    return info


def _people(root: Path, profiles: int) -> tuple:
    from PIL import Image

    from maskops.layout import scan_competition
    from maskops.synth.people import SynthConfig, synthesize

    synthesize(root, SynthConfig(profiles=profiles, seed=11))
    manifest = scan_competition(root).train
    return manifest, [Image.open(root / p).convert("RGB") for p in manifest["path"]]


def _remover(model: Path, resolution: int, device: str):
    """A background remover for `model`, a U2-Net-family ONNX file (u2netp, or the test's tiny graph)."""
    from maskops.background import BackgroundRemover

    return BackgroundRemover(model.parent, model="u2net_custom", model_path=model, resolution=resolution, device=device)


def section_paths(device: str, quick: bool, tmp: Path, model: Path) -> dict:
    """Each CUDA path once, with its CPU counterpart where the two must agree."""
    from maskops.background import U2Net
    from maskops.faces import FaceDetector
    from maskops.train import PRESETS, predict, train_model

    out = {}
    rng = np.random.default_rng(0)
    n = 128 if quick else 1024
    images = torch.from_numpy(rng.integers(0, 255, (n, 3, 64, 64), dtype=np.uint8))
    labels = rng.integers(0, 18, n)
    cfg = replace(PRESETS["scratch"], backbone="resnet10t", image_size=64, epochs=2, batch_size=64, device=device, augment=True)
    start = time.perf_counter()
    result = train_model(images, labels, images[:64], labels[:64], cfg)
    probs = predict(result.model, images[:64])
    out["train_with_augmentation"] = {"ok": bool(np.isfinite(probs).all()), "seconds": round(time.perf_counter() - start, 2),
                                      "device": result.device, "probabilities_sum_to_1": bool(np.allclose(probs.sum(1), 1, atol=1e-3))}  # fmt: skip

    _, pictures = _people(tmp / "people", 2 if quick else 8)
    cpu, here = FaceDetector(device="cpu"), FaceDetector(device=device)
    a, b = cpu.detect(pictures), here.detect(pictures)
    both = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    out["mtcnn"] = {"images": len(pictures), "faces_cpu": sum(x is not None for x in a), "faces_device": sum(y is not None for y in b),
                    "max_box_difference_px": round(max((float(np.abs(np.subtract(x.box, y.box)).max()) for x, y in both), default=0.0), 3)}  # fmt: skip

    x = np.random.default_rng(1).random((4, 3, 256, 256), dtype=np.float32)
    reference = U2Net(model, device="cpu", backend="onnxruntime")(x)
    ours = U2Net(model, device=device, backend="torch")(x)
    remover = _remover(model, 256, device)
    masks = remover.masks(pictures[:8])
    out["background"] = {"backend": remover.net.backend, "max_abs_difference_vs_onnxruntime": float(np.abs(reference - ours).max()),
                         "tolerance": 1e-3, "masks": len(masks)}  # fmt: skip
    out["ok"] = out["train_with_augmentation"]["ok"] and out["background"]["max_abs_difference_vs_onnxruntime"] <= 1e-3
    return out


def section_training(device: str, quick: bool, tmp: Path, model: Path) -> dict:
    from training import loop_vs_compute

    from maskops.train import PRESETS

    rows = []
    configs = (("resnet10t", 64, 32),) if quick else TRAINING
    for backbone, size, batch in configs:
        images = batch * (4 if quick else max(24, 6144 // batch))
        cfg = replace(PRESETS["scratch"], backbone=backbone, image_size=size, batch_size=batch, device=device, pretrained=False)
        try:
            rows.append({**loop_vs_compute(cfg, images, epochs=2 if quick else 3), "images": images, "target": ">= 0.9"})
        except Exception as exc:  # one configuration failing (memory) leaves the others
            rows.append({"backbone": backbone, "image_size": size, "batch_size": batch, "error": repr(exc)[-400:]})
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return {"train_loop_vs_compute": rows}


def section_crop(device: str, quick: bool, tmp: Path, model: Path) -> dict:
    from maskops.crop import CropConfig, Cropper, CropRecipe
    from maskops.faces import DetectorConfig, FaceDetector
    from maskops.files import file_digest
    from maskops.store import ImageSource, ImageStore

    root = tmp / "crop-people"
    manifest, _ = _people(root, 4 if quick else 96)
    batch = 8 if quick else 64
    cfg = CropConfig(batch_size=batch, background_model="u2net_custom")
    remover = _remover(model, cfg.background_resolution, device)
    cropper = Cropper(CropRecipe(cfg, DetectorConfig(), file_digest(remover.model_file)), ImageStore(tmp / "crop-store"), remover,
                      FaceDetector(device=device))  # fmt: skip
    start = time.perf_counter()
    _, stats = cropper.run(manifest, ImageSource(root).open_rgb)
    seconds = time.perf_counter() - start
    return {"images": stats.processed, "seconds": round(seconds, 2), "images_per_second": round(stats.processed / seconds, 1),
            "batch_size": batch, "faces": stats.faces, "fallbacks": stats.fallbacks}  # fmt: skip


def section_fullsize(stage: str, device: str, quick: bool, tmp: Path, work: Path) -> dict:
    """bench/pipeline.py in a child process (its own memory), data or training stage."""
    people, eval_people = (12, 2) if quick else (2700, 258)
    cmd = [sys.executable, str(HERE / "pipeline.py"), "--people", str(people), "--eval-people", str(eval_people), "--device", device,
           "--stage", stage, "--work", str(work), "--json", str(tmp / f"{stage}.json")]  # fmt: skip
    faces = 2 if quick else (DEMO_MASK_ONLY_FACES if real_faces_on_disk() else 0)
    if quick:  # two worker processes: the sharded crop and generate path runs in the CPU test too; and the training
        # stage with --extras, the plain-script arm of bench/orchestration.py (evaluation figures, Grad-CAM, label issues)
        cmd += ["--preset", "scratch", "--epochs", "1", "--no-background", "--workers", "2"]
        cmd += ["--extras", "--label-method", "train", "--label-epochs", "1"] if stage == "train" else []  # no pretrained weights here
    else:  # the GPU recipe: resnet26d at 128 px from random init, big batches
        cmd += ["--preset", "scratch", "--backbone", "resnet26d", "--image-size", "128", "--batch-size", "256", "--epochs", "12",
                "--crop-batch", "64", "--workers", "8"]  # fmt: skip
    _child([*cmd, "--mask-only-faces", str(faces)], f"pipeline.py --stage {stage}")
    return {**json.loads((tmp / f"{stage}.json").read_text()), "mask_only_faces": faces}


def real_faces_on_disk() -> bool:
    """Whether scikit-image's lfw_subset, where the mask-only real faces come from, is installed here (the demo's 40
    faces then go into the full size as they go into the demo; without it, none: it is never downloaded)."""
    spec = importlib.util.find_spec("skimage")
    return spec is not None and spec.origin is not None and (Path(spec.origin).parent / "data" / "lfw_subset.npy").is_file()


def _child(cmd: list[str], what: str) -> None:
    """A bench script in its own process (its own memory); its log goes to ours, a failure raises with its tail."""
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    sys.stderr.write(done.stderr[-4000:])
    if done.returncode != 0:
        raise RuntimeError(f"{what} exited {done.returncode}: {done.stderr[-1500:]}")


def section_study(device: str, quick: bool, tmp: Path, work: Path) -> dict:
    """bench/study.py in a child process: the variants and the ensemble against raw, over seeds."""
    if quick:  # the full-size section's toy data (same folder, same data seed): only the training runs again
        size = ["--people", "12", "--eval-people", "2", "--seeds", "0", "1", "--data-seed", "0", "--preset", "scratch", "--work", str(work),
                "--epochs", "1", "--label-method", "train", "--label-epochs", "1", "--no-background", "--workers", "2", "--mask-only-faces", "2"]  # fmt: skip
    else:  # no mask-only real faces, like the 480-person CPU study it is read beside
        size = ["--people", "480", "--eval-people", "60", "--seeds", "0", "1", "2", "--preset", "gpu-lite2", "--epochs", "12",
                "--crop-batch", "64", "--workers", "8", "--mask-only-faces", "0"]  # fmt: skip
    out = tmp / "study.json"
    cmd = [sys.executable, str(HERE / "study.py"), *size, "--device", device, "--json", str(out), "--markdown", str(tmp / "study.md")]
    _child(cmd, "study.py")
    result = json.loads(out.read_text())
    return {"summary": result["summary"], "preset": result["preset"], "people": result["people"], "label_issues": result.get("label_issues"),
            "table": (tmp / "study.md").read_text()}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default="paths,training,crop", help=f"comma-separated, of {', '.join(SECTIONS)}")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="toy sizes (the CPU test)")
    parser.add_argument("--budget", type=float, default=540.0, help="seconds; sections that would start after it are skipped")
    parser.add_argument("--out", type=Path, default=HERE / "results-gpu.json")
    parser.add_argument("--model-file", type=Path, help="a U2-Net-family ONNX file (default: u2netp, `maskops fetch-models`)")
    parser.add_argument("--work", type=Path, help="full-size working folder (default: .maskops/bench/fullsize)")
    args = parser.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {SECTIONS}")
    model = (args.model_file or fetch_u2netp(Settings.from_env().models)).absolute()
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    report = {**previous, "date": dt.date.today().isoformat(), **device_info(device), "quick": args.quick}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(os.environ.get("MASKOPS_HOME", ".maskops")) / "bench" / ("fullsize-quick" if args.quick else "fullsize")
        for name in sections:
            if time.perf_counter() - started > args.budget:
                report.setdefault("skipped", []).append(name)
                continue
            begin = time.perf_counter()
            print(f"[gpu_check] {name} ...", file=sys.stderr, flush=True)
            try:
                if name.startswith("fullsize-"):
                    value = section_fullsize(name.removeprefix("fullsize-"), device, args.quick, Path(tmp), work)
                elif name == "study":
                    value = section_study(device, args.quick, Path(tmp), work)
                else:
                    value = globals()[f"section_{name}"](device, args.quick, Path(tmp), model)
            except Exception:
                value = {"error": traceback.format_exc()[-3000:]}
            report[name] = {**value, "section_seconds": round(time.perf_counter() - begin, 2)}
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=1))  # after every section: a stopped run keeps what it measured
            print(json.dumps({name: report[name]})[:3000], flush=True)
    return report


if __name__ == "__main__":
    main()
