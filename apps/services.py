"""The production profile's long-running processes, one command each: the compose file's services run exactly
these (`maskops <service> ...`), and so does the native test of the profile.

    tracking-server   mlflow server, backend store on PostgreSQL, artifacts proxied to the object store
    code-server       Dagster's gRPC code-location server for assets.definitions
    webserver         dagster-webserver on that code server
    daemon            dagster-daemon (schedules, sensors, the run queue, run monitoring)
    worker            a Celery worker consuming some of the queues gpu, images, dagster
    init-instance     dagster.yaml for the profile and the pools' limits (run once before the others)
"""

from __future__ import annotations

import sys

from apps.launch import binary, environment, mlflow_environment, replace_process
from maskops.files import write_atomic
from maskops.settings import Settings, SettingsError
from resources.instance import ensure_dagster_home, pool_limits

QUEUES = ("gpu", "images", "dagster")
SERVICES = ("init-instance", "tracking-server", "code-server", "webserver", "daemon", "worker")


def production_settings() -> Settings:
    """Settings of a complete production profile, or SystemExit saying what to set."""
    settings = Settings.from_env()
    problems = settings.production_problems() if settings.production else ["set MASKOPS_PROFILE=production"]
    if problems:
        raise SystemExit("the production profile is incomplete:\n  " + "\n  ".join(problems))
    return settings


def init_instance(settings: Settings, environ: dict[str, str]) -> dict[str, int]:
    """Write dagster.yaml, create Dagster's tables on PostgreSQL and set the pools' limits; returns the limits."""
    import dagster as dg

    ensure_dagster_home(settings)
    limits = pool_limits(environ)
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        for pool, limit in limits.items():
            instance.event_log_storage.set_concurrency_slots(pool, limit)
    return limits


def tracking_server(settings: Settings, host: str, port: int, workers: int, allowed_hosts: str) -> list[str]:
    if not settings.services.mlflow_backend_store or not settings.services.mlflow_artifacts_destination:
        raise SettingsError(
            "set MASKOPS_MLFLOW_BACKEND_STORE (postgresql://...) and MASKOPS_MLFLOW_ARTIFACTS (s3://bucket/prefix or a folder)"
        )
    # the database URL (its password) reaches mlflow through MLFLOW_BACKEND_STORE_URI (tracking_environment), never
    # through the arguments, which every user of the host reads with `ps`
    args = ["server", "--serve-artifacts", "--artifacts-destination", settings.services.mlflow_artifacts_destination, "--host", host,
            "--port", str(port), "--workers", str(workers)]  # fmt: skip
    return [*args, "--allowed-hosts", allowed_hosts] if allowed_hosts else args


def workspace(settings: Settings, code_server: str) -> str:
    """A workspace.yaml pointing the webserver and the daemon at the gRPC code server (host:port)."""
    host, port = code_server.rsplit(":", 1)
    path = settings.dagster_home / "workspace.yaml"
    write_atomic(path, f"load_from:\n  - grpc_server:\n      host: {host}\n      port: {int(port)}\n      location_name: maskops\n")
    return str(path)


def worker(queues: str, name: str, concurrency: int) -> list[str]:
    unknown = sorted(set(queues.split(",")) - set(QUEUES))
    if unknown:
        raise SettingsError(f"unknown queue(s) {unknown}: a worker consumes some of {', '.join(QUEUES)}")
    return ["-A", "resources.celery_app", "worker", "-Q", queues, "-n", name, f"--concurrency={concurrency}", "--prefetch-multiplier=1",
            "--loglevel=INFO", "--without-gossip", "--without-mingle"]  # fmt: skip


def run_service(args) -> int:
    """`maskops <service>`: become the service's process (signals go straight to it)."""
    settings = production_settings()
    env = environment(settings)
    if args.service == "init-instance":
        print(f"dagster.yaml in {settings.dagster_home}; pool limits {init_instance(settings, env)}", flush=True)
        return 0
    if args.service == "tracking-server":
        replace_process(binary("mlflow"), tracking_server(settings, args.host, args.port, args.workers, args.allowed_hosts),
                        mlflow_environment(settings) | {"MLFLOW_BACKEND_STORE_URI": settings.services.mlflow_backend_store})  # fmt: skip
    ensure_dagster_home(settings)
    if args.service == "code-server":
        replace_process(binary("dagster"), ["code-server", "start", "-m", "assets.definitions", "-h", args.host, "-p", str(args.port)], env)
    if args.service == "webserver":
        replace_process(
            binary("dagster-webserver"), ["-w", workspace(settings, args.code_server), "-h", args.host, "-p", str(args.port)], env
        )
    if args.service == "daemon":
        replace_process(binary("dagster-daemon"), ["run", "-w", workspace(settings, args.code_server)], env)
    if args.service == "worker":
        replace_process(binary("celery"), worker(args.queues, args.name, args.concurrency), env)
    print(f"unknown service {args.service}", file=sys.stderr)
    return 2
