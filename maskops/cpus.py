"""How many CPU threads maskops' own compute may use: one budget for torch, ONNX Runtime and the worker pools.

`os.cpu_count()` counts the machine's cores. A Celery worker or a Kubernetes pod limited to 2 CPUs on a 64-core node,
or a process pinned to some cores, would then run 64 threads that spin at every barrier and get throttled; and on a
machine busy with other work, torch's spinning threads lose more than their share (bench/README.md, "A busy
machine": a demo training 2.7x slower beside one busy process with a thread per core, 1.5x with one thread).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from maskops.settings import SettingsError

THREADS_VARIABLE = "MASKOPS_THREADS"


class ThreadBudgetError(SettingsError):
    """MASKOPS_THREADS holds something other than a positive whole number."""


def cpu_budget(environ: Mapping[str, str] | None = None) -> int:
    """The threads maskops' compute uses: MASKOPS_THREADS when set; else OMP_NUM_THREADS when set (what torch already
    obeys, now ONNX Runtime and the pools too); else the CPUs this process may run on — its affinity mask and its
    container's CPU quota (cgroup v1 or v2, as joblib reads them). At least 1."""
    env = os.environ if environ is None else environ
    if explicit := threads_setting(env):
        return explicit
    omp = env.get("OMP_NUM_THREADS", "").split(",")[0].strip()  # "4,2": the outer level
    if omp.isdigit() and int(omp) >= 1:
        return int(omp)
    return usable_cpus()


def threads_setting(environ: Mapping[str, str] | None = None) -> int | None:
    """MASKOPS_THREADS, checked: None when unset; raises ThreadBudgetError, saying what to set, on anything but a whole
    number of at least 1."""
    explicit = (os.environ if environ is None else environ).get(THREADS_VARIABLE, "").strip()
    if not explicit:
        return None
    if not explicit.isdigit() or int(explicit) < 1:
        raise ThreadBudgetError(
            f"{THREADS_VARIABLE}={explicit!r}: set a whole number of threads of at least 1 (e.g. {THREADS_VARIABLE}=1 on a "
            "machine busy with other work), or unset it to use every CPU this process may run on"
        )
    return int(explicit)


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask and its cgroup's CPU quota (rounded up), at least 1."""
    try:
        from joblib import cpu_count
    except ImportError:  # scikit-learn brings joblib; without it, the affinity mask alone
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    return max(1, int(cpu_count(only_physical_cores=False)))


def torch_threads(threads: int = 0) -> int:
    """Give torch `threads` (0: the budget) for its CPU work in this process; returns the count set."""
    import torch

    count = threads or cpu_budget()
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count
