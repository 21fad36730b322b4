"""The prepared GPU check and the benchmark harness, run on the CPU so that neither rots between GPU machines."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.onnx_models import brightness_segmenter

ROOT = Path(__file__).resolve().parents[1]


def _bench_module(name: str):
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_gpu_check_runs_every_section_on_the_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Every section of bench/gpu_check.py at its toy size on the CPU: the CUDA paths' device handling, the loop-vs-compute
    figure, the crop stage, and the full-size script's two stages (data, then training from the same folder)."""
    model = brightness_segmenter(tmp_path / "models" / "tiny_segmenter.onnx")
    out = tmp_path / "results-gpu.json"
    env = {**os.environ, "MASKOPS_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--quick", "--device", "cpu", "--model-file", str(model), "--out", str(out),
         "--work", str(tmp_path / "work"), "--sections", "paths,training,crop,fullsize-data,fullsize-train,study"],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    errors = {k: v["error"] for k, v in report.items() if isinstance(v, dict) and "error" in v}
    assert not errors, errors
    assert report["device"] == "cpu" and report["quick"] and "device_name" in report
    paths = report["paths"]
    assert paths["ok"] and paths["train_with_augmentation"]["probabilities_sum_to_1"]
    assert paths["background"]["backend"] == "onnxruntime" and paths["background"]["max_abs_difference_vs_onnxruntime"] <= 1e-4
    assert paths["mtcnn"]["faces_cpu"] == paths["mtcnn"]["faces_device"] > 0
    (row,) = report["training"]["train_loop_vs_compute"]
    assert row["loop"] > 0 and row["compute"] > 0 and row["precision"] == "float32"
    assert report["crop"]["images"] == 28 and report["crop"]["images_per_second"] > 0
    data, train = report["fullsize-data"], report["fullsize-train"]
    assert data["images"]["raw"]["cropped"] == 7 * 12 and data["images"]["relabeled"]["cropped"] == 0  # shared through the store
    assert set(train["evaluation_macro_f1"]) == {
        "raw_model",
        "relabeled_model",
        "cleaned_model",
        "generated_model",
        "soft_vote",
        "fitted_vote",
        "ensemble",
    }
    assert set(train["fitted_weights"]) == {"raw_model", "relabeled_model", "cleaned_model", "generated_model"}
    assert {"synthesize", "crop", "generate"} <= set(data["seconds"]) and {"train/raw", "ensemble"} <= set(train["seconds"])
    assert train["evaluation_images"] == 14
    study = report["study"]["summary"]  # two seeds on the same toy data: every arm, and the pairs against raw
    assert study["seeds"] == 2 and len(study["arms"]["raw_model"]["macro_f1"]["values"]) == 2
    pair = study["paired"]["generated_model vs raw_model"]["macro_f1"]
    assert pair["differences"] == pytest.approx([g - r for g, r in zip(study["arms"]["generated_model"]["macro_f1"]["values"],
                                                                        study["arms"]["raw_model"]["macro_f1"]["values"], strict=True)])  # fmt: skip
    assert "| soft_vote vs best_member |" in report["study"]["table"] and "| fitted_vote vs soft_vote |" in report["study"]["table"]
    judged = report["study"]["label_issues"]  # label_issues once on the study's data per set of labels, scored against its truth
    assert set(judged) == {"raw", "relabeled"}
    for labels in judged.values():
        truth = labels["against_ground_truth"]
        assert set(truth) == {"mask", "gender", "age_group", "person"} and truth["person"]["items"] == 2 * truth["gender"]["items"]
        assert labels["age_group_probabilities_only"]["person"]["wrong"] == truth["person"]["wrong"]  # the same errors, judged the old way
    assert judged["raw"]["against_ground_truth"]["person"]["wrong"] >= judged["relabeled"]["against_ground_truth"]["person"]["wrong"]
    assert "| raw, person |" in report["study"]["table"] and "| relabeled, person |" in report["study"]["table"]
    assert "| raw, person (age groups by probabilities only) |" in report["study"]["table"]
    # bench/transfer.py on the same toy data: one member per lever, served as a champion would be, asked real photographs
    monkeypatch.setenv("MASKOPS_HOME", env["MASKOPS_HOME"])
    rows = _bench_module("transfer").main(["--work", str(tmp_path / "work"), "--people", "6", "--arms", "base,grey_blur",
                                           "--faces", "2", "--preset", "scratch", "--epochs", "1", "--device", "cpu"])  # fmt: skip
    assert [r["arm"] for r in rows] == ["base", "grey_blur"] and all(r["train_people"] == 6 for r in rows)
    assert all(0 <= r["unmasked_not_wear"] <= 1 and 0 <= r["masked_wear"] <= 1 and sum(r["calls_unmasked"].values()) == 4 for r in rows)


def test_the_harness_folds_gpu_figures_and_writes_a_table(tmp_path: Path):
    run = _bench_module("run")
    report = {
        "device": "cuda", "device_name": "NVIDIA H200", "date": "2026-11-28", "quick": False,
        "training": {"train_loop_vs_compute": [
            {"backbone": "resnet26d", "image_size": 128, "batch_size": 128, "loop": 6800.0, "compute": 7200.0, "ratio": 0.944, "precision": "bfloat16"},
            {"backbone": "tiny_vit_21m_224", "image_size": 224, "batch_size": 256, "error": "OutOfMemoryError()"},
        ]},
        "crop": {"images_per_second": 410.0, "batch_size": 64},
        "fullsize-data": {"wall_seconds": 250.0, "seconds": {"crop": 120.0}},
        "fullsize-train": {"wall_seconds": 300.0, "seconds": {"train/raw": 60.0}, "evaluation_macro_f1": {"ensemble": 0.8}},
        "study": {"people": 480, "summary": {"paired": {"relabeled_model vs raw_model": {
            "macro_f1": {"mean_difference": 0.03, "sd": 0.01, "wins": 3, "n": 3}, "old_f1": {"mean_difference": 0.0, "sd": 0.02, "wins": 1, "n": 3}}}}},
    }  # fmt: skip
    (tmp_path / "results-gpu.json").write_text(json.dumps(report))
    figures = run.gpu_figures(tmp_path / "results-gpu.json")
    by_name = {f["name"]: f for f in figures}
    assert set(by_name) == {"gpu_train_loop_vs_compute[resnet26d,128px,b128]", "gpu_crop_stage", "gpu_full_size_end_to_end",
                            "gpu_study[relabeled_model vs raw_model]"}  # fmt: skip
    assert by_name["gpu_study[relabeled_model vs raw_model]"]["ours"] == 0.03
    full = by_name["gpu_full_size_end_to_end"]
    assert full["ours"] == 550.0 and full["ratio"] == pytest.approx(0.917, abs=1e-3) and full["machine"] == "NVIDIA H200"
    assert full["details"]["stages"] == {"crop": 120.0, "train/raw": 60.0}
    table = run.markdown(figures, {"training": "Traceback\nRuntimeError: boom"})
    assert "| gpu_crop_stage | 410.0 images/s |" in table and "failed: RuntimeError: boom" in table
    # a quick (CPU) run of the check is never taken for GPU figures
    (tmp_path / "results-gpu.json").write_text(json.dumps({**report, "quick": True}))
    assert run.gpu_figures(tmp_path / "results-gpu.json") == []
