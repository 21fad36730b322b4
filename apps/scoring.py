"""The scoring server behind `maskops serve`: MLflow's `/invocations` protocol, safe by default.

Photos arrive as base64 image bytes in an `image` column; a `path` column is read only under configured roots
(real path checked, regular files only). Limits are checked before decoding: bytes per image and per request, and
pixels from the image header. Inference runs in a small pool of worker threads under a per-request timeout, so a
slow request answers 504 and never holds the others. JSON in (415 otherwise), JSON out (null, never NaN); a request
from another origin is refused (403).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from apps.http_checks import Refused, own_origin, read_body, require_json
from maskops.intake import IntakeError, IntakeLimits, header_pixels, read_regular_file
from maskops.options import option


@dataclass(frozen=True)
class ScoringConfig:
    max_image_bytes: int = option(20 * 2**20, "Largest photo, in bytes (after base64 decoding).")
    max_request_bytes: int = option(64 * 2**20, "Largest request body, in bytes (413 above).")
    max_pixels: int = option(40_000_000, "Largest photo, in pixels, read from its header before decoding.")
    max_request_pixels: int = option(
        100_000_000,
        "Pixels of all the photos of one request together (headers, before decoding); "
        "rows past it are refused. 100 M is about 500 photos of 512 x 384.",
    )
    timeout: float = option(60.0, "Seconds a request may take before it is answered 504.")
    workers: int = option(2, "Requests predicted at once; more wait up to `timeout`, then 503.")
    path_roots: tuple[str, ...] = option((), "Folders whose files may be named in a `path` column; none: paths are refused.")
    allowed_origins: tuple[str, ...] = option((), "Origins allowed besides the server's own (e.g. https://app.example.org).")

    @property
    def limits(self) -> IntakeLimits:
        return IntakeLimits(max_bytes=self.max_image_bytes, max_pixels=self.max_pixels)


@dataclass
class Scorer:
    """The loaded model and what the server knows about it."""

    model: object  # anything with predict(DataFrame with an `image` column of bytes) -> DataFrame
    model_uri: str
    config: ScoringConfig = field(default_factory=ScoringConfig)
    busy: int = 0  # predictions running, including timed-out ones still finishing
    stuck: int = 0  # of those, the ones whose request already timed out
    lock: threading.Lock = field(default_factory=threading.Lock)
    columns: list[str] = field(init=False, default_factory=list)  # of the model's answers (output_columns)

    def __post_init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=self.config.workers, thread_name_prefix="scoring")
        self.slots = threading.BoundedSemaphore(self.config.workers)
        self.roots = [Path(root).resolve() for root in self.config.path_roots]
        unwrap = getattr(self.model, "unwrap_python_model", None)
        inner = unwrap() if unwrap else None
        if hasattr(inner, "limits"):  # the pyfunc checks again, with the server's limits
            inner.limits = self.config.limits
        self.columns = output_columns(self.model)


def output_columns(model) -> list[str]:
    """The columns of the model's answers — its signature's outputs, or what the model says it answers with — so that
    a row refused before the model gets the same keys (null) even when no row of its request reached the model."""
    metadata = getattr(model, "metadata", None)
    schema = metadata.get_output_schema() if metadata is not None and hasattr(metadata, "get_output_schema") else None
    names = list(schema.input_names()) if schema is not None else list(getattr(model, "output_columns", None) or [])
    return names if "status" in names else ["status", *names]


def create_app(scorer: Scorer) -> Starlette:
    async def ping(request: Request) -> Response:
        if scorer.stuck >= scorer.config.workers:  # every worker held by requests that timed out and still run
            return JSONResponse({"status": "stuck: every worker is held by a request that timed out"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def version(request: Request) -> Response:
        import mlflow

        import maskops

        return JSONResponse({"model": scorer.model_uri, "mlflow": mlflow.__version__, "maskops": getattr(maskops, "__version__", "")})

    async def invocations(request: Request) -> Response:
        try:
            check_headers(request, scorer.config)
            body = await read_body(request, scorer.config.max_request_bytes)
            loop = asyncio.get_running_loop()
            rows = parse_rows(await loop.run_in_executor(None, json.loads, body))  # parsing and decoding off the event loop
            statuses, images = await loop.run_in_executor(None, take_images, rows, scorer)
            result = await predict_within(scorer, images)
        except Refused as exc:
            return JSONResponse({"error_code": "BAD_REQUEST", "message": str(exc)}, status_code=exc.status)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return JSONResponse({"error_code": "BAD_REQUEST", "message": f"the body is not JSON: {exc}"}, status_code=400)
        except RecursionError:
            return JSONResponse({"error_code": "BAD_REQUEST", "message": "the JSON is nested too deeply"}, status_code=400)
        return Response(to_json(merge(statuses, result, scorer.columns)), media_type="application/json")

    return Starlette(routes=[Route("/ping", ping), Route("/health", ping), Route("/version", version),
                             Route("/invocations", invocations, methods=["POST"])])  # fmt: skip


def check_headers(request: Request, config: ScoringConfig) -> None:
    """JSON only; an Origin, when sent, must be ours or an allowed one."""
    require_json(request)
    origin = request.headers.get("origin")
    if origin is not None and origin not in {own_origin(request), *config.allowed_origins}:
        raise Refused(403, f"requests from origin {origin} are not allowed (--allow-origin to add one)")


def parse_rows(payload) -> list[dict]:
    """Rows of MLflow's input formats: dataframe_split, dataframe_records, or inputs (columns or records)."""
    if not isinstance(payload, dict):
        raise Refused(400, "expected a JSON object with dataframe_split, dataframe_records or inputs")
    if "dataframe_split" in payload:
        split = payload["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("columns"), list) or not isinstance(split.get("data"), list):
            raise Refused(400, "dataframe_split needs 'columns' and 'data' lists")
        if not all(isinstance(c, str) for c in split["columns"]):
            raise Refused(400, "dataframe_split columns must be strings")
        if not all(isinstance(row, list) for row in split["data"]):  # answers are matched to rows by position: none dropped
            raise Refused(400, "dataframe_split data must be a list of rows, each a list of values in the order of 'columns'")
        rows = [dict(zip(split["columns"], row, strict=False)) for row in split["data"]]
    elif "dataframe_records" in payload:
        rows = payload["dataframe_records"]
    elif "inputs" in payload:
        inputs = payload["inputs"]
        if isinstance(inputs, dict):
            columns = {k: v if isinstance(v, list) else [v] for k, v in inputs.items()}
            count = max((len(v) for v in columns.values()), default=0)
            rows = [{k: v[i] if i < len(v) else None for k, v in columns.items()} for i in range(count)]
        else:
            rows = inputs
    else:
        raise Refused(400, "expected one of dataframe_split, dataframe_records, inputs")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise Refused(400, "rows must be objects with an 'image' (base64 image bytes) or a 'path'")
    return rows


def take_images(rows: list[dict], scorer: Scorer) -> tuple[list[str | None], dict[int, bytes]]:
    """Each row's status (None: it goes to the model) and the image bytes of those that go."""
    limits, budget = scorer.config.limits, scorer.config.max_request_pixels
    statuses: list[str | None] = []
    images: dict[int, bytes] = {}
    for i, row in enumerate(rows):
        try:
            data = image_bytes(row, limits, scorer.roots)
            pixels = header_pixels(data, limits)
            if pixels > budget:
                raise IntakeError(f"refused: the request's photos are over {scorer.config.max_request_pixels} pixels together; "
                                  "send fewer or smaller photos per request")  # fmt: skip
            budget -= pixels
            images[i] = data
            statuses.append(None)
        except IntakeError as exc:
            statuses.append(str(exc))
    return statuses, images


def image_bytes(row: dict, limits: IntakeLimits, roots: list[Path]) -> bytes:
    value, path = row.get("image"), row.get("path")
    if isinstance(value, str) and value and isinstance(path, str) and path:  # which one was meant? answer neither
        raise IntakeError("both 'image' and 'path' given: send the photo in one of them per row")
    if isinstance(value, str) and value:  # (the body, and so this string, is within max_request_bytes already)
        if value.startswith("data:") and ";base64," in value[:100]:  # a data: URL, as a browser's FileReader gives
            value = value.split(";base64,", 1)[1]
        value = "".join(value.split())  # line breaks, as `base64 photo.jpg` prints
        if len(value) > (limits.max_bytes + 2) // 3 * 4 + 4:  # before decoding the base64
            raise IntakeError(f"image too large: over {limits.max_bytes} bytes")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise IntakeError("image is not base64-encoded image bytes (server-side paths go in a 'path' column)") from None
    if isinstance(path, str) and path:
        if not roots:
            raise IntakeError("path refused: this server reads no server-side files (start it with --allow-path-root DIR)")
        return read_regular_file(path, limits, roots)
    raise IntakeError("no image: give base64 image bytes in 'image', or a 'path' under an allowed root")


async def predict_within(scorer: Scorer, images: dict[int, bytes]) -> pd.DataFrame | None:
    """The model's answers for `images` (row number -> bytes), from a worker thread, within the timeout."""
    if not images:
        return None
    loop = asyncio.get_running_loop()
    acquired = await loop.run_in_executor(None, scorer.slots.acquire, True, scorer.config.timeout)
    if not acquired:
        raise Refused(503, f"every worker is busy (for more than {scorer.config.timeout:g} s); try again later")
    with scorer.lock:
        scorer.busy += 1
    frame = pd.DataFrame({"image": list(images.values())}, index=list(images))
    future = loop.run_in_executor(scorer.pool, _predict, scorer, frame)
    try:
        return await asyncio.wait_for(asyncio.shield(future), scorer.config.timeout)
    except TimeoutError:
        with scorer.lock:
            scorer.stuck += 1
        future.add_done_callback(lambda _: _unstick(scorer))
        raise Refused(504, f"the prediction took longer than {scorer.config.timeout:g} s") from None
    except Refused:
        raise
    except Exception as exc:
        raise Refused(500, f"prediction failed: {type(exc).__name__}: {str(exc)[:200]}") from None


def _unstick(scorer: Scorer) -> None:
    with scorer.lock:
        scorer.stuck -= 1


def _predict(scorer: Scorer, frame: pd.DataFrame) -> pd.DataFrame:
    try:
        out = scorer.model.predict(frame.reset_index(drop=True))
        return out.set_axis(frame.index)
    finally:
        with scorer.lock:
            scorer.busy -= 1
        scorer.slots.release()  # only when the work is really done: a timed-out request keeps its worker until then


def merge(statuses: list[str | None], predicted: pd.DataFrame | None, columns: list[str] | None = None) -> list[dict]:
    """One answer per row, in order: the model's, or the refusal with empty fields (the model's `columns`, whether or
    not any row of the request reached the model)."""
    columns = list(predicted.columns) if predicted is not None else (columns or ["status"])
    answers = []
    for i, status in enumerate(statuses):
        if status is None and predicted is not None:
            answers.append(predicted.loc[i].to_dict())
        else:
            answers.append({c: None for c in columns} | {"status": status})
    return answers


def to_json(answers: list[dict]) -> bytes:
    """MLflow's response shape; missing values as null (a NaN would not be JSON)."""

    def clean(value):
        if value is None or value is pd.NA or (isinstance(value, float) and not math.isfinite(value)):
            return None
        if hasattr(value, "item"):  # numpy scalars
            return clean(value.item())
        return value

    rows = [{k: clean(v) for k, v in a.items()} for a in answers]
    return json.dumps({"predictions": rows}, allow_nan=False).encode()
