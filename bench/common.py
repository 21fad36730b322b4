"""Benchmark helpers: every figure is one JSON line."""

from __future__ import annotations

import json
import os
import platform


def machine() -> str:
    return f"{platform.machine()} {os.cpu_count()} cpu {platform.python_version()}"


def emit(name: str, value: float, unit: str, baseline: float | None = None, n: int | None = None, **extra) -> None:
    ratio = None if not baseline else round(value / baseline, 3)
    row = {"name": name, "value": round(value, 4), "unit": unit, "baseline": None if baseline is None else round(baseline, 4),
           "ratio": ratio, "n": n, "machine": machine(), **extra}  # fmt: skip
    print(json.dumps(row), flush=True)
