"""A local MLflow store that moved (or was copied) with its state folder: its recorded artifact locations follow it.

MLflow's SQLite store records absolute artifact locations (an experiment's root, every run's, every logged model's
and registered version's). When the store is opened with an artifact root other than the one its experiment
recorded, the old root is rewritten to the new one in every column that holds a location, in one transaction, so a
moved folder keeps its models and a copy never writes into (or reads from) the original. Nothing else is touched:
artifacts' own files, params, tags and dataset sources are history and keep the paths they were logged with.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

log = logging.getLogger(__name__)

# (table, column) of every artifact location MLflow 3's SQL store and registry resolve files through
LOCATION_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
)
SQLITE_PREFIX = "sqlite:///"
BUSY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Relocation:
    """What a relocation did: the old artifact root, the new one, and how many recorded locations it rewrote."""

    old: str
    new: str
    rows: int


def sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a local SQLite tracking URI; None for anything else (a server, PostgreSQL, in-memory)."""
    if not tracking_uri.startswith(SQLITE_PREFIX):
        return None
    path = unquote(tracking_uri[len(SQLITE_PREFIX) :].split("?", 1)[0])  # %20 is a space to SQLAlchemy too
    return Path(path) if path and path != ":memory:" else None


def local_folder(location: str) -> Path | None:
    """The folder a local artifact location names (a plain path, or a file: URI with its %-escapes decoded, as MLflow
    writes a folder with a space in it); None for any other scheme."""
    if location.startswith("file:"):
        return Path(unquote(urlparse(location).path))
    return None if "://" in location or not location else Path(location)


def follow_artifact_root(tracking_uri: str, experiment: str, artifact_root: str) -> Relocation | None:
    """Make a local SQLite store's recorded locations follow `artifact_root` (a local folder).

    The old root is what `experiment` recorded; when it is a local folder other than `artifact_root`, every location
    column's value equal to it or under it is rewritten, both as a file: URI and as a plain path. Does nothing for a
    store that is not a SQLite file, a store not created yet, a remote artifact root or an experiment that does not
    exist, and when `artifact_root` does not hold the recorded artifacts (`_holds_artifacts`); safe when several
    processes open the store at once (the check is repeated inside the write lock)."""
    db, new_folder = sqlite_file(tracking_uri), local_folder(artifact_root)
    if db is None or new_folder is None or not db.is_file():
        return None
    new_folder = new_folder.absolute()
    with contextlib.closing(sqlite3.connect(db, timeout=BUSY_TIMEOUT_S, isolation_level=None)) as conn:
        if _recorded_root(conn, experiment) in (None, new_folder):
            return None  # the common case (nothing moved) reads one row and takes no lock
        conn.execute("BEGIN IMMEDIATE")
        try:
            old_folder = _recorded_root(conn, experiment)
            if old_folder in (None, new_folder) or not _holds_artifacts(conn, old_folder, new_folder):
                conn.execute("ROLLBACK")
                if old_folder not in (None, new_folder):
                    log.warning("MLflow store %s keeps its artifacts under %s, and %s does not hold them: their locations are left "
                                "as they are (a moved store: set MASKOPS_HOME to the folder that holds it and its mlartifacts)",
                                db, old_folder, new_folder)  # fmt: skip
                return None
            rows = sum(_rewrite(conn, old, new) for old, new in _prefix_pairs(old_folder, new_folder))
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            conn.execute("ROLLBACK")
            if "readonly" not in str(exc):
                raise
            log.warning("MLflow store %s is read-only: its artifact locations still name %s (a read-only copy of a state "
                        "folder reads the original's artifacts, where they still exist)", db, old_folder)  # fmt: skip
            return None
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    done = Relocation(str(old_folder), str(new_folder), rows)
    log.warning("MLflow store %s moved: %d recorded artifact locations rewritten from %s to %s", db, rows, done.old, done.new)
    return done


def _recorded_root(conn: sqlite3.Connection, experiment: str) -> Path | None:
    has_table = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'experiments'").fetchone()
    if not has_table:
        return None
    row = conn.execute("SELECT artifact_location FROM experiments WHERE name = ?", (experiment,)).fetchone()
    folder = local_folder(row[0] or "") if row else None
    return folder.absolute() if folder is not None else None


def _holds_artifacts(conn: sqlite3.Connection, old: Path, new: Path) -> bool:
    """Whether `new` is the recorded root moved or copied: it holds at least one of the run or model folders recorded
    under `old`, or `old` is gone (a run that logged only metrics has no folder), or nothing is recorded there yet. A
    store opened with another state folder's root (MLFLOW_TRACKING_URI set, MASKOPS_HOME not), or with an empty one,
    is not: rewriting it would make every model in it unloadable."""
    recorded: list[str] = []
    for table, column in (("runs", "artifact_uri"), ("logged_models", "artifact_location")):
        if not conn.execute(f"SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?", (column,)).fetchone():
            continue
        for prefix, decode in ((old.as_uri(), unquote), (str(old), str)):
            rows = conn.execute(f"SELECT {column} FROM {table} WHERE substr({column}, 1, ?) = ?", (len(prefix) + 1, prefix + "/"))
            recorded += [decode(value[len(prefix) + 1 :]) for (value,) in rows]
    return not recorded or not old.exists() or any((new / relative).exists() for relative in recorded)


def _prefix_pairs(old: Path, new: Path) -> list[tuple[str, str]]:
    return [(old.as_uri(), new.as_uri()), (str(old), str(new))]


def _rewrite(conn: sqlite3.Connection, old: str, new: str) -> int:
    """Replace the prefix `old` by `new` where a location is `old` or lies under it (never /a/root2 for /a/root)."""
    rows = 0
    for table, column in LOCATION_COLUMNS:
        if not conn.execute(f"SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?", (column,)).fetchone():
            continue  # an older schema without this table or column
        cursor = conn.execute(
            f"UPDATE {table} SET {column} = ? || substr({column}, ?) WHERE {column} = ? OR substr({column}, 1, ?) = ?",
            (new, len(old) + 1, old, len(old) + 1, old + "/"),
        )
        rows += cursor.rowcount
    return rows
