"""The prepared GPU check and the benchmark harness, run on the CPU so that neither rots between GPU machines."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
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


def _gpu_check(tmp_path: Path, sections: str) -> dict:
    """bench/gpu_check.py --quick on the CPU for `sections`; its report, checked to hold no section error."""
    model = brightness_segmenter(tmp_path / "models" / "tiny_segmenter.onnx")
    out = tmp_path / "results-gpu.json"
    env = {**os.environ, "MASKOPS_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--quick", "--device", "cpu", "--model-file", str(model), "--out", str(out),
         "--work", str(tmp_path / "work"), "--sections", sections],
        capture_output=True, text=True, timeout=1800, env=env, cwd=tmp_path,  # a guard against a hang, not a speed target
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    errors = {k: v["error"] for k, v in report.items() if isinstance(v, dict) and "error" in v}
    assert not errors, errors
    assert report["device"] == "cpu" and report["quick"] and "device_name" in report
    return report


@pytest.mark.slow
def test_the_gpu_check_runs_its_device_sections_on_the_cpu(tmp_path: Path):
    """bench/gpu_check.py's paths, training and crop sections at their toy size on the CPU: the CUDA paths' device
    handling, the loop-vs-compute figure, the crop stage. (Two tests, so that two workers share the GPU check.)"""
    report = _gpu_check(tmp_path, "paths,training,crop")
    paths = report["paths"]
    assert paths["ok"] and paths["train_with_augmentation"]["probabilities_sum_to_1"]
    assert paths["background"]["backend"] == "onnxruntime" and paths["background"]["max_abs_difference_vs_onnxruntime"] <= 1e-4
    assert paths["mtcnn"]["faces_cpu"] == paths["mtcnn"]["faces_device"] > 0
    (row,) = report["training"]["train_loop_vs_compute"]
    assert row["loop"] > 0 and row["compute"] > 0 and row["precision"] == "float32"
    assert report["crop"]["images"] == 28 and report["crop"]["images_per_second"] > 0


@pytest.mark.slow
def test_the_gpu_check_runs_its_full_size_and_study_sections_on_the_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """bench/gpu_check.py's full-size script's two stages (data, then training from the same folder, with --extras) and
    the study at their toy size on the CPU, then bench/transfer.py on the same data."""
    report = _gpu_check(tmp_path, "fullsize-data,fullsize-train,study")
    data, train = report["fullsize-data"], report["fullsize-train"]
    assert data["images"]["raw"]["cropped"] == 7 * 12 and data["images"]["relabeled"]["cropped"] == 0  # shared through the store
    assert data["mask_only_faces"] == train["mask_only_faces"] == 2
    assert (
        data["images"]["mask_only"]["images"] >= 2 and train["members"]["raw"]["mask_only_images"] == data["images"]["mask_only"]["images"]
    )
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
    # --extras in the quick training stage: the plain-script arm of bench/orchestration.py (the Dagster job's domain
    # work: evaluation figures, Grad-CAM, label issues), which once crashed on label_issues' three results unseen
    assert train["label_issues"] >= 0 and {"evaluation", "label_issues"} <= set(train["seconds"])
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
    monkeypatch.setenv("MASKOPS_HOME", str(tmp_path / "home"))
    rows = _bench_module("transfer").main(["--work", str(tmp_path / "work"), "--people", "6", "--arms", "base,real_mask", "--faces", "2",
                                           "--real-faces", "2", "--preset", "scratch", "--epochs", "1", "--device", "cpu"])  # fmt: skip
    assert [r["arm"] for r in rows] == ["base", "real_mask"] and all(r["train_people"] == 6 for r in rows)
    assert {"astronaut unmasked", "camera unmasked"} <= set(rows[0]["calls_samples"])
    assert all(0 <= r["unmasked_not_wear"] <= 1 and 0 <= r["masked_wear"] <= 1 and sum(r["calls_unmasked"].values()) == 4 for r in rows)


def _imports_of(scripts: list[str]) -> dict[str, set[str]]:
    """Third-party top-level package -> the repository modules importing it, over everything `scripts` (bench/ scripts)
    import from this repository, transitively; imports inside functions count too (they run on some path)."""

    def source(name: str) -> Path | None:
        top, parts = name.split(".")[0], name.split(".")
        if len(parts) == 1 and (ROOT / "bench" / f"{top}.py").is_file():
            return ROOT / "bench" / f"{top}.py"
        path = ROOT.joinpath(*parts)
        return next((p for p in (path.with_suffix(".py"), path / "__init__.py") if p.is_file()), None)

    third: dict[str, set[str]] = {}
    todo, seen = list(scripts), set()
    while todo:
        name = todo.pop()
        if name in seen or (path := source(name)) is None:
            continue
        seen.add(name)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = (
                    ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], node.module or ""]).strip(".")
                    if node.level
                    else node.module
                )
                names = [base, *(f"{base}.{a.name}" for a in node.names)]
            else:
                continue
            for imported in names:
                top = imported.split(".")[0]
                if source(imported) is not None:
                    todo.append(imported)
                elif top not in sys.stdlib_module_names and top != "__future__" and source(top) is None:
                    third.setdefault(top, set()).add(name)
    return third


def test_the_gpu_check_needs_only_what_the_gpu_image_has_or_carries():
    """Every package the GPU check's scripts import (maskops included) is in the GPU image (bench/gpu_image_packages.txt)
    or among the wheels bench/gpu_wheels.sh carries: a missing one costs a scarce GPU run (cleanlab once would have:
    the study's label_issues imports it)."""
    from importlib.metadata import packages_distributions

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    image = {
        norm(line) for line in (ROOT / "bench" / "gpu_image_packages.txt").read_text().splitlines() if line and not line.startswith("#")
    }
    carried = {norm(n) for n in re.search(r"for name in ([^;]+); do", (ROOT / "bench" / "gpu_wheels.sh").read_text()).group(1).split()}
    not_on_the_path = {"rembg": "maskops.background imports it only for models outside the U2-Net family; the check runs u2netp in PyTorch"}
    distributions = packages_distributions()
    imported = _imports_of(["gpu_check", "pipeline", "study", "training"])
    assert {"torch", "timm", "cleanlab", "facenet_pytorch", "onnx2torch"} <= set(imported)  # the walk reaches maskops' own imports
    missing = {top: sorted(by) for top, by in imported.items() if top not in not_on_the_path
               and not {norm(d) for d in distributions.get(top, [top])} & (image | carried)}  # fmt: skip
    assert not missing, f"add these to bench/gpu_wheels.sh (pure-Python wheels) or keep them off the GPU check's path: {missing}"
    # bench/gpu_rehearsal.sh's stand-in image leaves some of the image's packages out: none the check imports, and
    # the versions it pins are of packages the image holds
    skip = re.compile(re.search(r"^skip='([^']+)'", (ROOT / "bench" / "gpu_rehearsal.sh").read_text(), re.M).group(1))
    left_out = {top for top in imported if any(skip.match(norm(d)) for d in distributions.get(top, [top]))}
    assert not left_out, f"bench/gpu_rehearsal.sh leaves out packages the GPU check imports: {left_out}"
    pinned = [line.split("==")[0] for line in (ROOT / "bench" / "gpu_image_constraints.txt").read_text().splitlines() if "==" in line]
    assert pinned and {norm(p) for p in pinned} <= image


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


def test_a_clean_run_of_a_benchmark_replaces_its_earlier_figures_and_a_failed_one_keeps_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """bench/run.py --only: a benchmark that ran cleanly replaces what it recorded before, at any size (an old
    `[12 people]` row folded in with --add must not sit beside this run's 64-people rows); a failed run keeps them; the
    other benchmarks' figures stay either way."""
    run = _bench_module("run")
    out = tmp_path / "results.json"
    old = [run.figure({"name": name, "value": 1.0}, "2026-11-01", source) for name, source in
           [("sweep[12 people]", "old-sweep.jsonl"), ("sweep_exponent", "sweep.py"), ("other_figure", "other.py")]]  # fmt: skip
    out.write_text(json.dumps(old))
    script = tmp_path / "sweep.py"
    monkeypatch.setattr(run, "HERE", tmp_path)
    monkeypatch.setattr(run, "BENCHMARKS", {"sweep": []})

    def bench(exit_code: int) -> dict[str, dict]:
        script.write_text(f"import json, sys\nprint(json.dumps({{'name': 'sweep[64 people]', 'value': 2.0}}))\nsys.exit({exit_code})\n")
        monkeypatch.setattr(sys, "argv", ["run.py", "--only", "sweep", "--out", str(out)])
        with pytest.raises(SystemExit) as ended:
            run.main()
        assert ended.value.code == (1 if exit_code else 0)
        return {f["name"]: f for f in json.loads(out.read_text())}

    failed = bench(1)
    assert set(failed) == {"sweep[12 people]", "sweep_exponent", "other_figure", "sweep[64 people]"}
    assert "| sweep | failed:" in (tmp_path / "RESULTS.md").read_text()
    clean = bench(0)
    assert set(clean) == {"sweep[64 people]", "other_figure"} and clean["sweep[64 people]"]["ours"] == 2.0


def test_shard_workers_end_when_their_parent_is_killed(tmp_path: Path):
    """bench/pipeline.py's crop and generate workers watch their parent: kill the parent (as an impatient user or a
    time limit does) and they stop, instead of cropping on as orphans that slow down whatever runs next."""
    import signal
    import time

    parent_code = (
        "import multiprocessing as mp, os, sys, time\n"
        f"sys.path.insert(0, {str(ROOT / 'bench')!r}); sys.path.insert(0, {str(ROOT)!r})\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from pipeline import exit_with_parent\n"
        "def work(marker):\n"
        "    open(marker, 'w').write(str(os.getpid()))\n"
        "    time.sleep(120)\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPoolExecutor(2, mp_context=mp.get_context('spawn'), initializer=exit_with_parent, initargs=(os.getpid(),))\n"
        "    [pool.submit(work, f'busy-{k}') for k in range(2)]\n"
        "    time.sleep(300)\n"
    )  # fmt: skip
    script = tmp_path / "parent.py"
    script.write_text(parent_code)
    parent = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    markers = [tmp_path / f"busy-{k}" for k in range(2)]

    def running(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
        except (FileNotFoundError, IndexError):
            return False

    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120  # both workers busy in a task (torch imported, the watcher started)
        while not all(m.exists() and m.read_text() for m in markers):
            assert time.monotonic() < deadline and parent.poll() is None, "the workers never started their tasks"
            time.sleep(0.2)
        workers = [int(m.read_text()) for m in markers]
        assert all(running(pid) for pid in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 20
        while any(running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        parent.kill()
        left = [pid for pid in workers if running(pid)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    assert not left, "workers outlived their killed parent"


def test_the_orchestration_bench_puts_every_step_of_the_job_beside_the_plain_scripts_stage(tmp_path: Path):
    """bench/orchestration.py's per-stage table: every step of the demo job (its assets and checks, read from the
    definitions) falls in a named group, and a run's step times are read back from a Dagster home."""
    import dagster as dg

    orchestration = _bench_module("orchestration")
    from assets.definitions import defs

    steps = dict.fromkeys(defs.resolve_job_def("maskops_pipeline").graph.node_names(), 1.0)
    stages = {"synthesize": 9.0, "review": 9.0, "scan": 1.0, "variants": 1.0, "generate": 2.0, "crop": 20.0, "decode": 4.0,
              **{f"train/{v}": 10.0 for v in ("raw", "relabeled", "cleaned", "generated")}, "evaluation": 4.0, "predict": 2.0,
              "ensemble": 1.0, "label_issues": 5.0}  # fmt: skip
    table = {r["stage"]: r for r in orchestration.by_stage(steps | {"(run)": 45.0}, 50.0, stages, 90.0)}
    assert table["other steps; between steps"]["dagster"] == 45.0 - len(steps)  # no step of the job left out of a group
    assert table["other steps; between steps"]["plain"] == 0.0
    assert table["models (decode, train, evaluate, log, quality check)"] == {
        "stage": "models (decode, train, evaluate, log, quality check)", "dagster": 8.0, "plain": 48.0, "difference": -40.0}  # fmt: skip
    assert table["data contracts (Great Expectations)"]["dagster"] == 13.0
    assert table["start-up and exit"] == {"stage": "start-up and exit", "dagster": 5.0, "plain": 90.0 - 80.0, "difference": -5.0}

    @dg.op
    def first() -> int:
        return 1

    @dg.op
    def second(value: int) -> int:
        return value + 1

    @dg.job
    def tiny():
        second(first())

    home = tmp_path / "dagster"
    home.mkdir()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert tiny.execute_in_process(instance=instance).success
    read = orchestration.job_steps(home)
    assert set(read) == {"first", "second", "(run)"} and read["(run)"] >= read["first"] + read["second"] > 0


def test_the_orchestration_bench_reports_the_median_run():
    """--repeats: the figure is the run of median job/script ratio (the lower middle for an even count), every run
    with its ratio; a job-only scale stands alone."""
    orchestration = _bench_module("orchestration")
    runs = [{"dagster_seconds": d, "plain_seconds": p} for d, p in ((130.0, 100.0), (100.0, 100.0), (121.0, 110.0))]
    assert orchestration.median_run(runs) == {"dagster_seconds": 121.0, "plain_seconds": 110.0, "ratio": 1.1}
    assert [r["ratio"] for r in runs] == [1.3, 1.0, 1.1]
    assert orchestration.median_run(runs[:2])["ratio"] == 1.0
    assert orchestration.median_run([{"dagster_seconds": 5.0}]) == {"dagster_seconds": 5.0}


def test_the_data_stage_runs_with_no_mask_only_faces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """bench/pipeline.py's data stage as the GPU check's study runs it (--mask-only-faces 0: an empty manifest among the
    crops: a boolean list over no rows selects no columns in pandas) and again on the same folder: the second pass
    crops nothing."""
    monkeypatch.setenv("MASKOPS_HOME", str(tmp_path / "home"))
    pipeline = _bench_module("pipeline")
    argv = ["--stage", "data", "--work", str(tmp_path / "work"), "--people", "6", "--eval-people", "1", "--no-background",
            "--workers", "1", "--mask-only-faces", "0", "--device", "cpu"]  # fmt: skip
    first = pipeline.main(argv)["images"]
    assert first["mask_only"] == {"images": 0, "cropped": 0, "reused": 0}
    assert first["raw"]["cropped"] == 42 and first["relabeled"]["cropped"] == 0
    again = pipeline.main(argv)["images"]
    assert all(counts["cropped"] == 0 for counts in again.values())
