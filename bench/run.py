"""`make bench`: every benchmark, one results file.

    .venv/bin/python bench/run.py [--only crop_stage,training] [--skip orchestration]

Runs each script in BENCHMARKS (each also runnable alone, quick by default, with its own size knobs), collects the
JSON figures they print, adds the GPU figures of bench/results-gpu.json (made by bench/gpu_check.py on a GPU machine)
and writes bench/results.json (a list: name, ours, baseline, ratio, target, unit, machine, date, details) and
bench/RESULTS.md (the same as a table). A script that fails is recorded as failed, and the others still run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import machine

# script and arguments; the orchestration run covers the overhead figure at the demo's size (64 people, 10 evaluation
# people; three runs of both arms, the median reported: single runs vary by ~10%, about the target's margin) and the
# demo's scaling at 1x, 2x and 4x that (the job alone at 128 and 256 people): about an hour on 2 cores
BENCHMARKS = {
    "dataset_io": [],
    "crop_stage": [],
    "incremental": [],
    "training": [],
    "concurrency": [],
    "variants": [],
    "ensemble": [],
    "label_issues": [],
    "real_photos": [],
    "event_log": [],
    "predict_load": [],
    "orchestration": ["--people", "64", "--eval-people", "10", "--scales", "1,2,4", "--plain-scales", "1", "--repeats", "3"],
}
NEEDS_DEMO = {"ensemble", "event_log", "label_issues", "real_photos", "variants"}  # they read a finished demo's state (MASKOPS_HOME)
KEYS = ("name", "value", "unit", "baseline", "ratio", "n", "machine", "target")

HERE = Path(__file__).resolve().parent


def _relative(value):
    """Paths of this machine written relative to the repository (results files are committed)."""
    text = json.dumps(value)
    for prefix, short in ((str(HERE.parent), "."), (tempfile.gettempdir(), "$TMP"), (str(Path.home()), "~")):
        text = text.replace(prefix, short)
    return json.loads(text)


def figure(row: dict, date: str, source: str) -> dict:
    details = _relative({k: v for k, v in row.items() if k not in KEYS})
    return {"name": row["name"], "ours": row.get("value"), "baseline": row.get("baseline"), "ratio": row.get("ratio"),
            "target": row.get("target"), "unit": row.get("unit"), "n": row.get("n"), "machine": row.get("machine") or machine(),
            "date": date, "source": source, "details": details}  # fmt: skip


def gpu_figures(path: Path) -> list[dict]:
    """The figures of a bench/gpu_check.py report, in the same shape (none when no GPU run was recorded)."""
    if not path.is_file():
        return []
    report = json.loads(path.read_text())
    if report.get("quick") or not str(report.get("device", "")).startswith("cuda"):
        return []
    where, date, out = report.get("device_name", "GPU"), report.get("date"), []
    for row in report.get("training", {}).get("train_loop_vs_compute", []):
        if "error" in row:
            continue
        out.append(figure({"name": f"gpu_train_loop_vs_compute[{row['backbone']},{row['image_size']}px,b{row['batch_size']}]",
                           "value": row["loop"], "baseline": row["compute"], "ratio": row["ratio"], "unit": "images/s", "target": ">= 0.9",
                           "machine": where, "precision": row.get("precision")}, date, "results-gpu.json"))  # fmt: skip
    crop = report.get("crop", {})
    if "images_per_second" in crop:
        out.append(figure({"name": "gpu_crop_stage", "value": crop["images_per_second"], "unit": "images/s", "machine": where,
                           "batch_size": crop.get("batch_size")}, date, "results-gpu.json"))  # fmt: skip
    seconds = sum(report.get(f"fullsize-{s}", {}).get("wall_seconds", 0) for s in ("data", "train"))
    if all("wall_seconds" in report.get(f"fullsize-{s}", {}) for s in ("data", "train")):
        out.append(figure({"name": "gpu_full_size_end_to_end", "value": seconds, "unit": "s", "baseline": 600.0, "ratio": round(seconds / 600, 3),
                           "target": "<= 600 s (ratio <= 1)", "machine": where,
                           "stages": {**report["fullsize-data"]["seconds"], **report["fullsize-train"]["seconds"]},
                           "evaluation_macro_f1": report["fullsize-train"].get("evaluation_macro_f1")}, date, "results-gpu.json"))  # fmt: skip
    for pair, m in report.get("study", {}).get("summary", {}).get("paired", {}).items():  # bench/study.py: arms against raw, by seed
        f1 = m["macro_f1"]
        out.append(figure({"name": f"gpu_study[{pair}]", "value": f1["mean_difference"], "unit": "macro F1 difference (paired mean)",
                           "n": f1["n"], "machine": where, "sd": f1["sd"], "wins": f1["wins"], "old_f1": m.get("old_f1"),
                           "people": report["study"].get("people")}, date, "results-gpu.json"))  # fmt: skip
    return out


def markdown(figures: list[dict], failures: dict[str, str]) -> str:
    lines = ["# Benchmark results", "", "Written by `make bench` (bench/run.py); every ratio is ours / the baseline measured in the same run.",
             "GPU rows come from bench/results-gpu.json (bench/gpu_check.py on a GPU machine).", "",
             "| figure | ours | baseline | ratio | target | machine | date |", "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for f in figures:
        unit = f" {f['unit']}" if f.get("unit") else ""
        ours = "" if f["ours"] is None else f"{f['ours']}{unit}"
        base = "" if f["baseline"] is None else f"{f['baseline']}{unit}"
        lines.append(f"| {f['name']} | {ours} | {base} | {f['ratio'] if f['ratio'] is not None else ''} | {f['target'] or ''} | "
                     f"{f['machine']} | {f['date']} |")  # fmt: skip
    for name, error in failures.items():
        lines.append(f"| {name} | failed: {error.splitlines()[-1][:120] if error else ''} | | | | {machine()} | |")
    return "\n".join(lines) + "\n"


def _stem(name: str) -> str:
    return name.split("[", 1)[0]


def _kept(figures: dict[str, dict], benchmark: str, rows: list[dict]) -> dict[str, dict]:
    """The figures a clean run of `benchmark` (which printed `rows`) leaves: not those that came from the same script,
    nor the same figure at another size (e.g. dagster_vs_plain_script[12 people] from an earlier run folded in with
    --add, when this run measured 64, 128 and 256 people)."""
    stems = {_stem(r["name"]) for r in rows}
    return {k: f for k, f in figures.items() if f.get("source") != f"{benchmark}.py" and _stem(f["name"]) not in stems}


def demo_finished() -> bool:
    from maskops.settings import Settings

    return (Settings.from_env().submissions / "submission.csv").is_file()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--skip", default="", help="comma-separated benchmark names")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument(
        "--add",
        type=Path,
        action="append",
        default=[],
        help="also fold in the JSON lines a benchmark printed when run alone (e.g. a long orchestration run)",
    )
    args = parser.parse_args()
    only = {s for s in args.only.split(",") if s}
    skip = {s for s in args.skip.split(",") if s}
    date = dt.date.today().isoformat()
    previous = {f["name"]: f for f in json.loads(args.out.read_text())} if args.out.is_file() and (only or skip) else {}
    figures: dict[str, dict] = dict(previous)  # a partial run keeps the other figures
    failures: dict[str, str] = {}
    chosen = [name for name in BENCHMARKS if not (only and name not in only) and name not in skip]
    if NEEDS_DEMO & set(chosen) and not demo_finished():
        print("[bench] no finished demo in the state folder: running `maskops demo` first", file=sys.stderr, flush=True)
        subprocess.run([str(Path(sys.executable).with_name("maskops")), "demo"], check=True)
    for name in chosen:
        extra = BENCHMARKS[name]
        start = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *extra], capture_output=True, text=True, check=False)
        rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode == 0 and rows:  # a clean run replaces what this benchmark recorded before, other sizes included
            figures = _kept(figures, name, rows)
        for row in rows:
            figures[row["name"]] = figure(row, date, f"{name}.py")
            print(json.dumps(row), flush=True)
        if done.returncode != 0:
            failures[name] = done.stderr[-2000:]
            print(f"[bench] {name} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        print(f"[bench] {name}: {time.perf_counter() - start:.0f}s", file=sys.stderr, flush=True)
    for extra_file in args.add:
        for line in extra_file.read_text().splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                figures[row["name"]] = figure(row, date, extra_file.name)
    for row in gpu_figures(HERE / "results-gpu.json"):
        figures[row["name"]] = row
    result = list(figures.values())
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    (args.out.parent / "RESULTS.md").write_text(markdown(result, failures))
    print(f"{len(result)} figures -> {args.out} and {args.out.parent / 'RESULTS.md'}", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
