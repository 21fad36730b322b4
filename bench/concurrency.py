"""Two steps at once on the same cores, against each alone: why maskops runs such steps one at a time locally.

    .venv/bin/python bench/concurrency.py [--seconds 8] [--size 112] [--spin 2000]

The UI's runs execute steps in parallel (a training step beside a crop step, two runs training at once), and each step's
libraries start one thread per core. This bench runs two workloads as separate processes, started together once both
are warm, each timed over the same `--seconds`:
- train: the demo's training step (its backbone, batch and resolution, forward + backward + AdamW on random tensors:
  bench/training.py's compute-only loop);
- background: the crop stage's background model (u2netp through maskops.background.U2Net, batches of 8 at 192 px).
The share of a pair is the sum, over its two processes, of (speed together / speed alone): 1 means overlapping them
costs nothing against running them one after the other, 0.5 that half the machine is lost. With the libraries'
defaults torch's OpenMP threads spin ~300,000 rounds for work while the other process holds the cores, and the share
falls far below 1: so locally every step that uses every core waits for the one `cores` pool slot
(resources.instance.step_pool). Figures: concurrent_trainings_share and concurrent_train_and_crop_share (target < 1
means the pool is right; details: the same with a short spin, GOMP_SPINCOUNT=--spin), and lone_training_with_short_spin
(a process alone with that short spin / with the default: the alternative not taken, as it slows every lone step).
And a machine busy with work that is not maskops' (one process spinning in a plain Python loop, as a compile or an
editor's indexer would): training_beside_a_busy_process, the training's speed beside it with MASKOPS_THREADS set to the
cores it leaves free (the usable CPUs less one: 1 on 2 cores) over its speed with the default budget (torch's own
count; > 1: the free cores are the faster setting there), with both as shares of the speed alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import emit


def worker(kind: str, seconds: float, size: int) -> None:
    """Warm up, say so, wait for the word to start (a line on stdin), run `kind` for `seconds`, print its speed."""
    import numpy as np

    if kind == "train":
        from training import ComputeOnly

        from maskops.cpus import torch_threads
        from maskops.train_config import PRESETS

        torch_threads()  # the budget, as a training step takes it (MASKOPS_THREADS, else torch's own count capped at the usable CPUs)

        cfg = replace(PRESETS["demo"], pretrained=False, image_size=size, device="cpu")
        engine = ComputeOnly(cfg, [1] * 18)

        def step() -> None:
            engine.step(*engine.batches[0])
    else:
        from maskops.background import U2Net, fetch_u2netp
        from maskops.settings import Settings

        net = U2Net(fetch_u2netp(Settings.from_env().models))
        batch = np.random.default_rng(0).random((8, 3, 192, 192), dtype=np.float32)

        def step() -> None:
            net(batch)

    step()
    print("ready", flush=True)
    sys.stdin.readline()
    began, steps = time.perf_counter(), 0
    while time.perf_counter() - began < seconds:
        step()
        steps += 1
    print(json.dumps({"kind": kind, "rate": steps / (time.perf_counter() - began)}), flush=True)


def together(kinds: list[str], spin: str | None, seconds: float, size: int, threads: str | None = None) -> list[float]:
    """Speeds (steps/s) of `kinds` run at the same time, one process each, both started once both are warm; `spin`:
    their GOMP_SPINCOUNT (None: libgomp's default); `threads`: their MASKOPS_THREADS (None: the default budget)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "MASKOPS_THREADS", "OMP_NUM_THREADS")}
    env |= ({"GOMP_SPINCOUNT": spin} if spin else {}) | ({"MASKOPS_THREADS": threads} if threads else {})
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", k, "--seconds", str(seconds), "--size", str(size)], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for k in kinds]  # fmt: skip
    for proc in procs:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"a concurrency worker died warming up (exit {proc.wait()})")
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    rates = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"concurrency worker exited {proc.returncode}")
        rates.append(json.loads(out.strip().splitlines()[-1])["rate"])
    return rates


def beside_a_busy_process(threads: str | None, seconds: float, size: int) -> float:
    """The training's speed (steps/s) while another process spins in a plain Python loop on one core."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        return together(["train"], None, seconds, size, threads)[0]
    finally:
        busy.kill()
        busy.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0, help="timed seconds of every arm")
    parser.add_argument("--size", type=int, default=112, help="the training step's image size (the demo's: 112)")
    parser.add_argument("--spin", default="2000", help="GOMP_SPINCOUNT of the short-spin arm (the alternative to the pool)")
    parser.add_argument("--worker", choices=["train", "background"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.seconds, args.size)
        return
    arms = {"default": None, "short_spin": args.spin}
    alone = {arm: {k: together([k], spin, args.seconds, args.size)[0] for k in ("train", "background")} for arm, spin in arms.items()}
    for name, kinds in (("concurrent_trainings_share", ["train", "train"]), ("concurrent_train_and_crop_share", ["train", "background"])):
        shares, rates = {}, {}
        for arm, spin in arms.items():
            rates[arm] = together(kinds, spin, args.seconds, args.size)
            shares[arm] = round(sum(r / alone[arm][k] for r, k in zip(rates[arm], kinds, strict=True)), 3)
        emit(name, shares["default"], "sum of speed together / alone", n=2, target="< 1: one at a time (the local `cores` pool)",
             kinds=kinds, steps_per_second=rates, alone=alone, short_spin_share=shares["short_spin"], gomp_spincount=args.spin,
             seconds=args.seconds)  # fmt: skip
    from maskops.cpus import usable_cpus

    free = str(max(1, usable_cpus() - 1))  # the cores one busy process leaves
    alone_free = together(["train"], None, args.seconds, args.size, free)[0]
    busy = {threads or "default": beside_a_busy_process(threads, args.seconds, args.size) for threads in (None, free)}
    emit("training_beside_a_busy_process", busy[free], "steps/s", busy["default"], n=1,
         target="report: > 1 means MASKOPS_THREADS = the free cores is the faster setting on a busy machine (README, Operations)",
         usable_cpus=usable_cpus(), maskops_threads=int(free), steps_per_second_beside_busy=busy,
         steps_per_second_alone={"default": alone["default"]["train"], free: alone_free},
         share_of_alone={"default": round(busy["default"] / alone["default"]["train"], 3), free: round(busy[free] / alone["default"]["train"], 3)},
         image_size=args.size, seconds=args.seconds)  # fmt: skip
    emit("lone_training_with_short_spin", alone["short_spin"]["train"], "steps/s", alone["default"]["train"], n=1,
         target="the alternative to the pool: it would slow every lone step", gomp_spincount=args.spin, image_size=args.size, seconds=args.seconds)  # fmt: skip


if __name__ == "__main__":
    main()
