"""Data-parallel training: `train_model` with `processes` > 1 runs here, under torchrun (torch.distributed.run) on
this machine — gloo on CPU, NCCL with one GPU per process. The data go to the processes in one file; rank 0 writes
the result back; the caller gets the same TrainResult as from one process (its per-epoch callback is replayed
after training, since the epochs ran elsewhere).

    python -m torch.distributed.run --standalone --nproc_per_node=N -m maskops.distributed FOLDER
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch

from maskops.cpus import cpu_budget
from maskops.options import from_plain
from maskops.train import TrainResult, build_model, train_model
from maskops.train_config import TrainConfig


class DistributedTrainingError(RuntimeError):
    """torchrun's processes failed; the message carries the end of their output."""


def train_data_parallel(
    train: tuple[torch.Tensor, np.ndarray], val: tuple[torch.Tensor, np.ndarray], cfg: TrainConfig, checkpoint_dir: str | Path | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:  # fmt: skip
    """Train on (images, labels) pairs with `cfg.processes` processes; the threads of this machine are shared between them."""
    (train_images, train_labels), (val_images, val_labels) = train, val
    with tempfile.TemporaryDirectory(prefix="maskops-ddp-") as tmp:
        folder = Path(tmp)
        job = {"train_images": train_images, "train_labels": np.asarray(train_labels), "val_images": val_images,
               "val_labels": np.asarray(val_labels), "cfg": asdict(cfg), "checkpoint_dir": str(checkpoint_dir) if checkpoint_dir else None}  # fmt: skip
        torch.save(job, folder / "job.pt")
        threads = max(1, cpu_budget() // cfg.processes)
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={cfg.processes}",
                   "-m", "maskops.distributed", str(folder)]  # fmt: skip
        done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": str(threads)}, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not (folder / "result.pt").exists():
            raise DistributedTrainingError(
                f"data-parallel training with {cfg.processes} processes failed:\n{(done.stdout + done.stderr)[-4000:]}"
            )
        out = torch.load(folder / "result.pt", weights_only=False)
    model, _ = build_model(cfg)
    model.load_state_dict(out.pop("state"))
    if on_epoch is not None:
        for metrics in out["history"]:
            on_epoch(int(metrics["epoch"]), metrics)
    return TrainResult(model=model, **out)


def main(folder: Path) -> None:
    job = torch.load(folder / "job.pt", weights_only=False)
    cfg = from_plain(TrainConfig, job["cfg"])
    gpu = torch.cuda.is_available() and cfg.device != "cpu"
    torch.distributed.init_process_group("nccl" if gpu else "gloo")
    try:
        result = train_model(job["train_images"], job["train_labels"], job["val_images"], job["val_labels"], cfg, job["checkpoint_dir"])
        if torch.distributed.get_rank() == 0:
            out = {f.name: getattr(result, f.name) for f in fields(result) if f.name != "model"}
            out["state"] = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
            torch.save(out, folder / "result.pt")
    finally:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
