"""Files written so that a crash never leaves half of one, and names for their content.

Every writer in maskops goes through `write_atomic`: on a local disk the bytes go to a
temporary file in the same folder, which is then renamed over the target (a rename within a
folder is atomic); object stores (s3://, gs://, memory://) replace whole objects on each put.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pandas as pd
from upath import UPath

from maskops.csv_safety import escape_formulas

Writer = Callable[[IO[bytes]], None]


def _is_local(path: UPath | Path) -> bool:
    return not isinstance(path, UPath) or getattr(path, "protocol", "") in ("", "file", "local")


def write_atomic(path: str | os.PathLike | UPath, data: bytes | str | Writer, follow_links: bool = False) -> None:
    """Write `data` (bytes, text, or a function that writes to a binary file) to `path`, all or nothing. A symbolic
    link at `path` is replaced by the file; with `follow_links` (files people keep, such as labels under version
    control elsewhere) its target is replaced instead, and a link to nothing or a loop is an OSError naming it."""
    write: Writer
    if isinstance(data, str):
        data = data.encode()
    if isinstance(data, bytes):
        payload = data

        def write(f: IO[bytes]) -> None:
            f.write(payload)

    else:
        write = data
    target = path if isinstance(path, UPath) else Path(path)
    if not _is_local(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as f:
            write(f)
        return
    local = Path(target.path if isinstance(target, UPath) else target)
    if follow_links and local.is_symlink():
        try:
            local = local.resolve(strict=True)
        except (OSError, RuntimeError):  # RuntimeError: a loop, before Python 3.13
            raise OSError(errno.ELOOP, "a symbolic link to a file that does not exist, or a loop", str(local)) from None
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, local)
    finally:
        tmp.unlink(missing_ok=True)


def write_csv_atomic(frame: pd.DataFrame, path: str | os.PathLike, escape: bool = True, follow_links: bool = False) -> None:
    """The frame as CSV, written atomically, with spreadsheet formulas escaped (people open these files in Excel);
    `escape=False` for a file whose bytes a program checks (the submission: ids exactly as eval/info.csv has them)."""
    write_atomic(path, (escape_formulas(frame) if escape else frame).to_csv(index=False), follow_links=follow_links)


def file_digest(path: str | os.PathLike, length: int = 64) -> str:
    """SHA-256 of a file's bytes (the first `length` hex digits)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:length]


def file_version(path: str | os.PathLike) -> str:
    """A human-edited file's version: 16 hex digits of its hash, or "missing"."""
    return file_digest(path, 16) if Path(path).exists() else "missing"


def slug(text: str) -> str:
    """`text` as a safe file or object name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "__", text)
