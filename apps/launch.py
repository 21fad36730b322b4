"""Starting the engines' own commands (dagster, mlflow) from this environment, seeing maskops' state."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Callable
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


def mlflow_environment(settings: Settings) -> dict[str, str]:
    """`environment` for an MLflow server: MLflow's job runner off unless MLFLOW_SERVER_ENABLE_JOB_EXECUTION says
    otherwise. It runs MLflow's GenAI jobs (judges, prompt optimization, trace roll-ups), which maskops never submits,
    in a pool of huey processes that doubles a server's processes and memory (measured in the README)."""
    return {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **environment(settings)}


def dagster(settings: Settings) -> tuple[str, dict[str, str]]:
    """The dagster command and its environment, with dagster.yaml written before Dagster first starts."""
    ensure_dagster_home(settings)
    return binary("dagster"), environment(settings)


def replace_process(command: str, args: list[str], env: dict[str, str]) -> None:
    """Become `command` (default signal handling restored, or `dagster dev` ignores SIGTERM/SIGINT when started from a script)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.execve(command, [command, *args], env)


class ListenError(Exception):
    """A server cannot listen where it was asked to; the message says why and what to pass instead."""


def listening_socket(host: str, port: int):
    """A socket listening on `host`:`port`, made before a server loads anything, so that a port another server holds or
    an address that is not this machine's is said at once in one line (uvicorn said it after the model had loaded,
    below a line announcing the address as served, which then was another server's)."""
    import socket

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ListenError(cannot_listen(host, port, exc)) from None


def cannot_listen(host: str, port: int, exc: OSError) -> str:
    import errno
    import socket

    reason = os.strerror(exc.errno) if isinstance(exc.errno, int) and exc.errno > 0 else (exc.strerror or str(exc))
    if exc.errno == errno.EADDRINUSE:
        fix = "another server holds that port: stop it, or pass another --port"
    elif exc.errno == errno.EACCES:
        fix = "this user may not listen on that port: pass a --port above 1023"
    elif exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        fix = f"{host} is not an address of this machine: pass --host 127.0.0.1 (or one of its own addresses)"
    else:
        fix = "pass another --host or --port"
    return f"cannot listen on {host}:{port} ({reason}); {fix}"


def serve_asgi(app, sock) -> None:
    """Serve `app` with uvicorn on an already listening socket (listening_socket) until interrupted."""
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


def missing_state(settings: Settings) -> str | None:
    """What to say when the local state folder a server would read does not exist (a mistyped MASKOPS_HOME, or a
    command run from another folder): such a server would start and answer every page with 'not found'."""
    if settings.production or settings.home.is_dir():
        return None
    return (f"no maskops state at {settings.home}: run `make demo` (or materialize the assets) first, or point MASKOPS_HOME at "
            "the state folder")  # fmt: skip


def docs_folders(settings: Settings) -> dict[str, Path]:
    """What `maskops docs` serves: URL folder -> folder on disk (the data-quality summaries, GX's Data Docs site)."""
    from expectations.contract import DATA_DOCS_SITE
    from resources.quality import DATA_DOCS_PATH, REPORTS_PATH

    return {REPORTS_PATH: settings.reports / "quality", DATA_DOCS_PATH: settings.home / "gx" / DATA_DOCS_SITE}


def docs_server(folders: dict[str, Path], host: str = "127.0.0.1", port: int = 0, refresh: dict[str, Callable[[], object]] | None = None):
    """An HTTP server of the data-quality reports (`folders`: URL folder -> folder on disk), so the links of asset checks
    open from the Dagster UI (browsers refuse file:// links from a web page). Nothing outside those folders is served.
    `refresh`: URL folder -> what brings it up to date, called (one at a time) before a page of that folder is served:
    GX's Data Docs are rendered when someone looks, not after every contract."""
    import functools
    import html
    import posixpath
    import threading
    import urllib.parse
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    refreshing = threading.Lock()

    class Handler(SimpleHTTPRequestHandler):
        def translate_path(self, path: str) -> str:
            parts = [p for p in posixpath.normpath(urllib.parse.unquote(urllib.parse.urlsplit(path).path)).split("/") if p]
            if not parts or parts[0] not in folders or ".." in parts:
                return str(Path(self.directory) / "__nothing__")
            return str(folders[parts[0]].joinpath(*parts[1:]))

        def do_GET(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            folder = path.strip("/").split("/", 1)[0]
            if refresh and folder in refresh and (path.endswith((".html", "/")) or path.strip("/") == folder):
                with refreshing:
                    try:
                        refresh[folder]()
                    except Exception as exc:  # a broken project must not take the reports down: serve what is there
                        print(f"maskops docs: could not bring /{folder}/ up to date: {type(exc).__name__}: {exc}", file=sys.stderr)
            if path in ("", "/"):
                links = "".join(
                    f"<li><a href='/{name}/'>{html.escape(name)}</a> ({html.escape(str(f))})</li>" for name, f in folders.items()
                )
                body = f"<!doctype html><meta charset='utf-8'><title>maskops data quality</title><ul>{links}</ul>".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            super().do_GET()

        def log_message(self, format: str, *args) -> None:  # quiet: one line per request is noise in a terminal
            pass

    return ThreadingHTTPServer((host, port), functools.partial(Handler, directory=str(next(iter(folders.values())))))


def serve_data_docs(settings: Settings, host: str = "127.0.0.1", port: int | None = None) -> None:
    """Serve the data-quality summaries (/quality/) and GX Data Docs (/data-docs/) until interrupted (`maskops docs`);
    ListenError when it cannot listen there."""
    from expectations.contract import build_data_docs
    from resources.quality import DATA_DOCS_PATH, DOCS_PORT

    port = DOCS_PORT if port is None else port
    try:
        server = docs_server(docs_folders(settings), host, port, refresh={DATA_DOCS_PATH: lambda: build_data_docs(settings.home / "gx")})
    except OSError as exc:
        raise ListenError(cannot_listen(host, port, exc)) from None
    print(f"data-quality reports on http://{host}:{server.server_address[1]}/quality/ and GX Data Docs on /data-docs/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
