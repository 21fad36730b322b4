"""Starting the engines' own commands (dagster, mlflow) from this environment, seeing maskops' state."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

from maskops.settings import Settings
from resources.instance import ensure_dagster_home


def binary(name: str) -> str:
    """The environment's own `name` command (next to this Python), else the one on PATH."""
    exe = Path(sys.executable).with_name(name)
    found = str(exe) if exe.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"the {name} command is not installed in this environment; run `make demo` or pip install -e .")
    return found


def environment(settings: Settings) -> dict[str, str]:
    """This process's environment plus maskops' state; the environment's bin folder first on PATH (MLflow starts
    its servers by name)."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, **settings.environment(), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def dagster(settings: Settings) -> tuple[str, dict[str, str]]:
    """The dagster command and its environment, with dagster.yaml written before Dagster first starts."""
    ensure_dagster_home(settings)
    return binary("dagster"), environment(settings)


def replace_process(command: str, args: list[str], env: dict[str, str]) -> None:
    """Become `command` (default signal handling restored, or `dagster dev` ignores SIGTERM/SIGINT when started from a script)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.execve(command, [command, *args], env)
