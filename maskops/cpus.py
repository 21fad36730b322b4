"""How many CPU threads maskops' own compute may use: one budget for torch, ONNX Runtime and the worker pools.

`os.cpu_count()` counts the machine's cores. A Celery worker or a Kubernetes pod limited to 2 CPUs on a 64-core node,
or a process pinned to some cores, would then run 64 threads that spin at every barrier and get throttled; and on a
machine busy with other work, torch's spinning threads lose more than their share (bench/README.md, `concurrency.py`:
a demo training on 2 cores kept 0.39 of its speed beside one busy process with a thread per core, 0.63 with one).

- `MASKOPS_THREADS`, when set, is the budget of everything: torch, ONNX Runtime, the process and thread pools.
- Otherwise torch keeps its own default (`OMP_NUM_THREADS`, else a thread per physical core) and ONNX Runtime takes
  `OMP_NUM_THREADS` or a thread per usable CPU, both capped at the CPUs the process may use; the pools take those
  CPUs (never `OMP_NUM_THREADS`, a count of threads inside one process, often 1 in containers).
- The CPUs the process may use: its affinity mask and its container's CPU quota (cgroup v1 or v2, as joblib reads them).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from maskops.settings import SettingsError

THREADS_VARIABLE = "MASKOPS_THREADS"
_WHOLE = re.compile(r"[0-9]+")


class ThreadBudgetError(SettingsError):
    """MASKOPS_THREADS holds something other than a positive whole number."""


def threads_setting(environ: Mapping[str, str] | None = None) -> int | None:
    """MASKOPS_THREADS, checked: None when unset; raises ThreadBudgetError, saying what to set, on anything but a whole
    number of at least 1."""
    explicit = (os.environ if environ is None else environ).get(THREADS_VARIABLE, "").strip()
    if not explicit:
        return None
    if not _WHOLE.fullmatch(explicit) or int(explicit) < 1:
        raise ThreadBudgetError(
            f"{THREADS_VARIABLE}={explicit!r}: set a whole number of threads of at least 1 (on a machine busy with other work, "
            "the cores that work leaves free), or unset it to let maskops use the CPUs this process may run on"
        )
    return int(explicit)


def _openmp_threads(environ: Mapping[str, str]) -> int | None:
    outer = environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()  # "4,2": the outer level
    return int(outer) if _WHOLE.fullmatch(outer) and int(outer) >= 1 else None


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask and its cgroup's CPU quota (rounded up), at least 1."""
    from joblib import cpu_count  # scikit-learn's dependency, and in the GPU image

    return max(1, int(cpu_count(only_physical_cores=False)))


def cpu_budget(environ: Mapping[str, str] | None = None) -> int:
    """Threads for a compute library that starts one per CPU (ONNX Runtime): MASKOPS_THREADS when set, else
    OMP_NUM_THREADS when set, else the usable CPUs — OMP_NUM_THREADS capped at those too."""
    env = os.environ if environ is None else environ
    if explicit := threads_setting(env):
        return explicit
    cpus = usable_cpus()  # the affinity mask and the cgroup files, read once
    return min(_openmp_threads(env) or cpus, cpus)


def worker_count(environ: Mapping[str, str] | None = None) -> int:
    """Processes or threads for a pool of workers: MASKOPS_THREADS when set, else the usable CPUs."""
    return threads_setting(environ) or usable_cpus()


def budget_summary(environ: Mapping[str, str] | None = None) -> str:
    """The budget in one line, with where it comes from (`maskops where`)."""
    env = os.environ if environ is None else environ
    if explicit := threads_setting(env):
        return f"{explicit} (MASKOPS_THREADS)"
    omp = _openmp_threads(env)
    openmp = f", OMP_NUM_THREADS={omp}" if omp else ""
    return f"{usable_cpus()} CPUs usable (affinity and quota{openmp}); MASKOPS_THREADS sets one count for every library"


_torch_default: int | None = None  # torch's own count, read before maskops first sets one


def torch_threads(threads: int = 0) -> int:
    """Give torch `threads` for its CPU work in this process (0: MASKOPS_THREADS when set, else torch's own default —
    OMP_NUM_THREADS or a thread per physical core — capped at the usable CPUs); returns the count set."""
    import torch

    global _torch_default
    if _torch_default is None:
        _torch_default = torch.get_num_threads()
    count = threads or threads_setting() or min(_torch_default, usable_cpus())
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count
