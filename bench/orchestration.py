"""Dagster's orchestration overhead, and how the demo scales with the number of people.

    .venv/bin/python bench/orchestration.py [--people 12] [--eval-people 2] [--scales 1] [--plain-scales ...] [--repeats 1] [--seed 0]

For each scale s (people x s), on the same synthetic data (same config and seed, the demo's mask-only real faces,
the same demo reviewer):
- the demo job: `dagster job execute ... -j maskops_pipeline` (Dagster, MLflow, GX, reports, registry), wall time
  and the peak memory of its whole process tree;
- the plain script: bench/pipeline.py --extras, timed as a process too (the same domain functions: crops, variants, four models with their
  evaluation figures, label issues, the ensemble), data synthesis excluded from both; only at --plain-scales (default:
  every scale), so that the scaling alone can be measured at the demo's size and beyond in less time; --repeats runs
  both arms again at those scales, each time on a fresh state folder and in the other order (a host whose speed drifts
  during the runs favours the arm that runs first), and reports the median run with every run's ratio.
Figures: dagster_vs_plain_script (ratio of wall times, target <= 1.15) for every scale the plain script ran at, and
with several scales demo_scaling (the exponent b of time ~ people^b fitted on the job's wall times; target close to
1, i.e. linear; with the least-squares line's fixed seconds and seconds per person) with peak memory per scale.
Nothing is downloaded: the models folder is shared (MASKOPS_MODELS).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import emit

from maskops.background import fetch_u2netp
from maskops.pretrained import fetch_pretrained
from maskops.settings import Settings
from maskops.synth.people import SynthConfig, synthesize
from maskops.synth.real_faces import DEMO_MASK_ONLY_FACES
from maskops.synth.reviewer import demo_review
from maskops.train_config import PRESETS

HERE = Path(__file__).resolve().parent


PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and all its descendants (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
            except (OSError, ValueError):
                continue
    tree, frontier = {pid}, [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier and p not in tree]
        tree.update(children)
        frontier = children
    total = 0
    for p in tree:
        try:
            total += int((Path("/proc") / str(p) / "statm").read_text().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            continue
    return total


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak resident memory of the process tree (GiB, sampled every 0.2 s) and the output's tail."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.2)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    output = proc.communicate()[0]
    done.set()
    watcher.join()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... exited {proc.returncode}:\n{output[-3000:]}")
    return seconds, peak / 2**30, output


def run_scale(people: int, eval_people: int, seed: int, tmp: Path, models: Path, mask_only_faces: int, plain: bool,
              plain_first: bool = False) -> dict:  # fmt: skip
    """Both arms at one size (the job alone unless `plain`); `plain_first` runs the script before the job, so that
    repeats in alternating order cancel a host that speeds up or slows down during the runs."""
    from apps.launch import dagster

    home = tmp / f"home-{people}"
    env = {**os.environ, "MASKOPS_HOME": str(home), "MASKOPS_MODELS": str(models)}
    os.environ.update({"MASKOPS_HOME": str(home), "MASKOPS_MODELS": str(models)})
    settings = Settings.from_env()
    synthesize(settings.dataset, SynthConfig(profiles=people, eval_profiles=eval_people, seed=seed, mask_only_faces=mask_only_faces))
    demo_review(settings.dataset, settings.labels, seed=seed)
    command, dagster_env = dagster(settings)
    out = tmp / f"plain-{people}.json"
    plain_cmd = [sys.executable, str(HERE / "pipeline.py"), "--people", str(people), "--eval-people", str(eval_people), "--seed", str(seed),
                 "--mask-only-faces", str(mask_only_faces), "--device", "cpu", "--extras", "--work", str(tmp / f"plain-{people}"), "--json", str(out)]  # fmt: skip
    arms = {
        "job": lambda: timed([command, "job", "execute", "-m", "assets.definitions", "-a", "defs", "-j", "maskops_pipeline"], {**env, **dagster_env}),
        "plain": lambda: timed(plain_cmd, env),
    }  # fmt: skip
    order = ["job", "plain"][: 2 if plain else 1]
    timings = {arm: arms[arm]() for arm in (reversed(order) if plain_first else order)}
    job, job_peak, _ = timings["job"]
    row = {"people": people, "dagster_seconds": round(job, 2), "dagster_peak_gib": round(job_peak, 2)}
    if not plain:
        return row
    # both arms timed alike, as processes from launch to exit (the job's wall time holds its start-up and imports; the
    # script's own wall_seconds starts after its imports), less the script's data drawing, done before the job starts
    plain_process, plain_peak, _ = timings["plain"]
    result = json.loads(out.read_text())
    plain = plain_process - result["seconds"].get("synthesize", 0) - result["seconds"].get("review", 0)
    table = by_stage(job_steps(Path(dagster_env["DAGSTER_HOME"])), job, result["seconds"], plain)
    return row | {"plain_seconds": round(plain, 2), "plain_peak_gib": round(plain_peak, 2), "first": "plain" if plain_first else "job",
                  "plain_seconds_after_imports": round(plain - (plain_process - result["wall_seconds"]), 2),
                  "plain_stages": result["seconds"], "by_stage": table}  # fmt: skip


def job_steps(dagster_home: Path) -> dict[str, float]:
    """Seconds of every step of the newest run in `dagster_home`, and "(run)" for the run from its start to its end."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        run = instance.get_run_records(limit=1)[0]
        steps = {s.step_key: (s.end_time or 0) - (s.start_time or 0) for s in instance.get_run_step_stats(run.dagster_run.run_id)}
        return steps | {"(run)": (run.end_time or 0) - (run.start_time or 0)}


# The job's steps and the plain script's stages that do the same work ("*" at either end of a name: any prefix/suffix)
DATASET_STEPS = (
    "sources",
    "competition_dataset",
    "label_corrections",
    "label_exclusions",
    "relabeled_dataset",
    "cleaned_dataset",
    "profile_split",
)
STAGE_GROUPS = {
    "datasets (scan, corrections, split)": (DATASET_STEPS, ("scan", "variants")),
    "crops and generated photos": (("*_crops", "generated_dataset"), ("crop", "generate")),
    "models (decode, train, evaluate, log, quality check)": (("*_model", "*_model_quality"), ("decode", "train/*", "evaluation")),
    "label issues": (("label_issues",), ("label_issues",)),
    "ensemble and submission": (("ensemble", "ensemble_*", "submission"), ("ensemble", "predict")),
    "data contracts (Great Expectations)": (("*_contract",), ()),
}
NOT_COMPARED = ("synthesize", "review")  # the plain script's own data drawing: the job's data is drawn before it starts


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(name == p or (p[0] == "*" and name.endswith(p[1:])) or (p[-1] == "*" and name.startswith(p[:-1])) for p in patterns)


def by_stage(steps: dict[str, float], job_wall: float, stages: dict[str, float], plain_wall: float) -> list[dict]:
    """Seconds per kind of work in both arms (`steps`: job_steps; `stages`: the plain script's; `plain_wall` without
    NOT_COMPARED), then what neither names: the job's steps of no group and its time between steps, its command's
    start-up and exit (wall time outside the run); the plain script's start-up and untimed work."""
    run = steps.get("(run)", sum(steps.values()))
    steps = {k: v for k, v in steps.items() if k != "(run)"}
    stages = {k: v for k, v in stages.items() if k not in NOT_COMPARED}
    rows, left_steps, left_stages = [], dict(steps), dict(stages)
    for group, (step_patterns, stage_patterns) in STAGE_GROUPS.items():
        mine = [k for k in left_steps if _matches(k, step_patterns)]
        theirs = [k for k in left_stages if _matches(k, stage_patterns)]
        rows.append((group, sum(left_steps.pop(k) for k in mine), sum(left_stages.pop(k) for k in theirs)))
    rows.append(("other steps; between steps", sum(left_steps.values()) + run - sum(steps.values()), sum(left_stages.values())))
    rows.append(("start-up and exit", job_wall - run, plain_wall - sum(stages.values())))
    return [{"stage": g, "dagster": round(d, 1), "plain": round(p, 1), "difference": round(d - p, 1)} for g, d, p in rows]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=12, help="people at scale 1 (the demo has 64)")
    parser.add_argument("--eval-people", type=int, default=2)
    parser.add_argument("--scales", default="1", help="comma-separated multiples of --people, e.g. 1,2,4")
    parser.add_argument("--plain-scales", help="the scales at which the plain script runs too (default: every scale)")
    parser.add_argument("--mask-only-faces", type=int, default=DEMO_MASK_ONLY_FACES, help="real faces under mask_only/ (the demo's: 40)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of both arms at each plain scale; the figure is the median run (single runs vary by ~10%%)")  # fmt: skip
    args = parser.parse_args()
    models = Settings.from_env().models
    fetch_u2netp(models)  # both arms train the demo preset: its pretrained weights too (`maskops fetch-models`)
    fetch_pretrained(models, PRESETS["demo"].backbone)
    scales = [int(s) for s in args.scales.split(",")]
    plain_scales = scales if args.plain_scales is None else [int(s) for s in args.plain_scales.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in scales:
            runs = []
            for k in range(args.repeats if scale in plain_scales else 1):
                work = Path(tmp) / f"scale{scale}-run{k}"  # every run on a fresh state folder and the same data
                work.mkdir()
                runs.append(run_scale(args.people * scale, args.eval_people * scale, args.seed, work, models, args.mask_only_faces,
                                      scale in plain_scales, plain_first=k % 2 == 1))  # fmt: skip
                shutil.rmtree(work, ignore_errors=True)
                print(json.dumps({k: v for k, v in runs[-1].items() if k != "by_stage"}), file=sys.stderr, flush=True)
                for r in runs[-1].get("by_stage", []):
                    print(
                        f"  {r['stage']:55s} dagster {r['dagster']:7.1f} s  plain {r['plain']:7.1f} s  {r['difference']:+7.1f} s",
                        file=sys.stderr,
                    )
            row = median_run(runs)
            rows.append(row)
            if "plain_seconds" not in row:
                continue
            repeats = (
                {"runs": [{k: r[k] for k in ("dagster_seconds", "plain_seconds", "ratio", "first")} for r in runs]} if len(runs) > 1 else {}
            )
            emit(f"dagster_vs_plain_script[{row['people']} people]", row["dagster_seconds"], "s", baseline=row["plain_seconds"], n=row["people"], target="<= 1.15",
                 dagster_peak_gib=row["dagster_peak_gib"], plain_peak_gib=row["plain_peak_gib"], plain_stages=row["plain_stages"], by_stage=row["by_stage"],
                 plain_seconds_after_imports=row["plain_seconds_after_imports"], **repeats)  # fmt: skip
    if len(rows) > 1:
        _, slope = line([math.log(r["people"]) for r in rows], [math.log(r["dagster_seconds"]) for r in rows])
        fixed, per_person = line([r["people"] for r in rows], [r["dagster_seconds"] for r in rows])
        emit("demo_scaling_exponent", slope, "exponent", baseline=1.0, n=len(rows), target="close to 1 (linear)",
             people=[r["people"] for r in rows], seconds=[r["dagster_seconds"] for r in rows],
             peak_gib=[r["dagster_peak_gib"] for r in rows], fixed_seconds=round(fixed, 1), seconds_per_person=round(per_person, 2),
             mask_only_faces=args.mask_only_faces)  # fmt: skip


def median_run(runs: list[dict]) -> dict:
    """The run whose job/script ratio is the median (the lower of the middle two for an even count), each run
    keeping its ratio; a run without the plain script stands alone."""
    for r in runs:
        if "plain_seconds" in r:
            r["ratio"] = round(r["dagster_seconds"] / r["plain_seconds"], 3)
    return sorted(runs, key=lambda r: r.get("ratio", 0.0))[(len(runs) - 1) // 2]


def line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Intercept and slope of the least-squares line through (xs, ys)."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


if __name__ == "__main__":
    main()
