"""One CPU budget for torch, ONNX Runtime and the pools: MASKOPS_THREADS, else OMP_NUM_THREADS, else the CPUs the
process may use (affinity, container quota) — never every core of a machine the process may not use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maskops.cpus import THREADS_VARIABLE, ThreadBudgetError, cpu_budget, usable_cpus
from maskops.settings import Settings, SettingsError
from tests.onnx_models import brightness_segmenter

ROOT = Path(__file__).resolve().parents[1]


def test_the_budget_is_the_setting_then_openmps_then_the_usable_cpus():
    assert cpu_budget({THREADS_VARIABLE: "3", "OMP_NUM_THREADS": "1"}) == 3
    assert cpu_budget({"OMP_NUM_THREADS": "2"}) == 2
    assert cpu_budget({"OMP_NUM_THREADS": "4,2"}) == 4  # nested levels: the outer one
    assert cpu_budget({"OMP_NUM_THREADS": "many"}) == cpu_budget({}) == usable_cpus()
    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert usable_cpus() <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
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

before = torch.get_num_threads()
FaceDetector()  # threads=0: the budget
net = U2Net(sys.argv[1])  # threads=0: the budget
print(json.dumps({"budget": cpu_budget(), "torch_before": before, "torch": torch.get_num_threads(),
                  "onnxruntime": net.session.get_session_options().intra_op_num_threads, "cpu_count": os.cpu_count()}))
"""


def _probe(model: Path, env: dict[str, str], pin: bool = False) -> dict:
    args = [sys.executable, "-c", PROBE, str(model), *(["pin"] if pin else [])]
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_image_models_take_the_budget_not_every_core(tmp_path: Path):
    """The face detector's torch threads and the background model's ONNX Runtime session follow the budget: the setting
    (here 3, more than this machine may have, so that a count taken from anywhere else shows), and without it a process
    pinned to one CPU uses one thread where os.cpu_count() counts them all."""
    model = brightness_segmenter(tmp_path / "tiny_segmenter.onnx")
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", THREADS_VARIABLE)} | {"PYTHONPATH": str(ROOT)}
    set_ = _probe(model, base | {THREADS_VARIABLE: "3"})
    assert set_["budget"] == set_["torch"] == set_["onnxruntime"] == 3
    if hasattr(os, "sched_setaffinity"):
        pinned = _probe(model, base, pin=True)
        assert pinned["budget"] == pinned["torch"] == pinned["onnxruntime"] == 1
