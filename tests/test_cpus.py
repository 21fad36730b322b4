"""One CPU budget for torch, ONNX Runtime and the pools (maskops.cpus): MASKOPS_THREADS when set; otherwise the
libraries' own counts capped at the CPUs the process may use (affinity, container quota) — never every core of a
machine the process may not use — and the pools those CPUs, whatever OMP_NUM_THREADS says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maskops.cpus import THREADS_VARIABLE, ThreadBudgetError, cpu_budget, usable_cpus, worker_count
from maskops.settings import Settings, SettingsError
from tests.onnx_models import brightness_segmenter

ROOT = Path(__file__).resolve().parents[1]


def test_the_budget_is_the_setting_then_openmps_then_the_usable_cpus():
    cpus = usable_cpus()
    assert cpu_budget({THREADS_VARIABLE: "3", "OMP_NUM_THREADS": "1"}) == 3  # the setting wins, even past the CPUs
    assert cpu_budget({"OMP_NUM_THREADS": "1"}) == 1
    assert cpu_budget({"OMP_NUM_THREADS": "4,2"}) == min(4, cpus)  # nested levels: the outer one; capped at the CPUs
    assert cpu_budget({"OMP_NUM_THREADS": "many"}) == cpu_budget({"OMP_NUM_THREADS": "²"}) == cpu_budget({}) == cpus
    # pools: OMP_NUM_THREADS counts threads inside one process (1 in the suite's workers, in many containers)
    assert worker_count({"OMP_NUM_THREADS": "1"}) == worker_count({}) == cpus
    assert worker_count({THREADS_VARIABLE: "3"}) == 3
    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert usable_cpus() <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "²"])
def test_a_bad_thread_setting_is_named_with_the_fix(value: str, tmp_path: Path):
    with pytest.raises(ThreadBudgetError, match=f"{THREADS_VARIABLE}='{value}': set a whole number of threads of at least 1"):
        cpu_budget({THREADS_VARIABLE: value})
    with pytest.raises(SettingsError, match=THREADS_VARIABLE):  # before any step starts
        Settings.from_env({"MASKOPS_HOME": str(tmp_path), THREADS_VARIABLE: value})
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"} | {"MASKOPS_HOME": str(tmp_path), THREADS_VARIABLE: value}
    done = subprocess.run([sys.executable, "-m", "apps.cli", "where"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and f"{THREADS_VARIABLE}='{value}'" in done.stderr and "Traceback" not in done.stderr


PROBE = """
import json, os, sys
if len(sys.argv) > 2:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # pinned to one CPU, as a cpuset or taskset would
import torch
from maskops.background import U2Net
from maskops.cpus import cpu_budget
from maskops.faces import FaceDetector
from resources.tracking import Compute

before = torch.get_num_threads()  # torch's own default: OMP_NUM_THREADS, else a thread per physical core
FaceDetector()  # threads=0: the budget
detector = torch.get_num_threads()
torch.set_num_threads(7)
Compute(checkpoints_dir="unused").apply_threads()  # threads=0: the budget, as a model step takes it
net = U2Net(sys.argv[1])  # threads=0: the budget
print(json.dumps({"budget": cpu_budget(), "torch_before": before, "torch": detector, "compute": torch.get_num_threads(),
                  "onnxruntime": net.session.get_session_options().intra_op_num_threads, "cpu_count": os.cpu_count()}))
"""


def _probe(model: Path, env: dict[str, str], pin: bool = False) -> dict:
    args = [sys.executable, "-c", PROBE, str(model), *(["pin"] if pin else [])]
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_image_models_take_the_budget_not_every_core(tmp_path: Path):
    """The face detector's and the model steps' torch threads and the background model's ONNX Runtime session follow
    the budget: the setting (here 3, more than this machine may have, so that a count taken from anywhere else shows);
    without it torch's own count and a thread per usable CPU for ONNX Runtime; and a process pinned to one CPU uses one
    thread where os.cpu_count() counts them all."""
    model = brightness_segmenter(tmp_path / "tiny_segmenter.onnx")
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", THREADS_VARIABLE)} | {"PYTHONPATH": str(ROOT)}
    set_ = _probe(model, base | {THREADS_VARIABLE: "3"})
    assert set_["budget"] == set_["torch"] == set_["compute"] == set_["onnxruntime"] == 3
    default = _probe(model, base)  # nothing set: torch keeps its own count (a thread per physical core, not per logical CPU)
    assert default["torch"] == default["compute"] == min(default["torch_before"], usable_cpus())
    assert default["onnxruntime"] == default["budget"] == usable_cpus()
    if hasattr(os, "sched_setaffinity"):
        pinned = _probe(model, base, pin=True)
        assert pinned["budget"] == pinned["torch"] == pinned["compute"] == pinned["onnxruntime"] == 1
