"""The scoring server (`maskops serve`, apps/scoring.py) against a real registered ensemble: image bytes in, paths only
under allowed roots, limits before decoding, JSON only, same origin only, valid JSON out, a timeout per request."""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.registered import register_ensemble
from tests.servers import free_port, running


def _refuse_constant(name: str):
    raise AssertionError(f"{name} in a JSON response")


def post(url: str, body: bytes | dict, headers: dict | None = None, timeout: float = 120) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read(), parse_constant=_refuse_constant)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read(), parse_constant=_refuse_constant)


def jpeg(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def rows(*images: dict) -> dict:
    return {"dataframe_records": list(images)}


def huge_png_header(side: int = 13000) -> bytes:
    """A PNG that declares side x side pixels (a 13000 x 13000 image decodes to 500 MB) in under 100 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


class Served:
    """A uvicorn server in a thread of the test process (so a test can see the process's memory)."""

    def __init__(self, scorer):
        import uvicorn

        from apps.scoring import create_app

        self.url = f"http://127.0.0.1:{free_port()}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(scorer), host="127.0.0.1", port=int(self.url.rsplit(":", 1)[1]),
                                                    log_level="warning"))  # fmt: skip
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the scoring server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def registry(tracking_store, models_dir: Path):
    registered = register_ensemble(tracking_store.service(), models_dir / "tiny_segmenter.onnx")
    return tracking_store, registered


@pytest.fixture(scope="module")
def model(registry, models_dir: Path):
    from tracking.prediction import load_model

    tracking, registered = registry
    return load_model(tracking.service(), registered.ensemble_uri, models_dir)


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory, astronaut) -> dict[str, Path]:
    """An allowed root with a photo, a FIFO, a folder and a link to a photo outside; a photo outside the root."""
    base = tmp_path_factory.mktemp("roots")
    allowed, outside = base / "allowed", base / "outside"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "face.jpg").write_bytes(jpeg(astronaut))
    (outside / "secret.jpg").write_bytes(jpeg(astronaut))
    os.mkfifo(allowed / "pipe.jpg")
    (allowed / "folder.jpg").mkdir()
    (allowed / "link.jpg").symlink_to(outside / "secret.jpg")
    return {"allowed": allowed, "outside": outside}


@pytest.fixture(scope="module")
def server(model, roots):
    from apps.scoring import Scorer, ScoringConfig

    served = Served(
        Scorer(model, "models:/maskops-ensemble/1", ScoringConfig(max_request_bytes=2**20, path_roots=(str(roots["allowed"]),)))
    )
    yield served
    served.stop()


def test_a_tiny_image_does_not_cost_its_neighbour_its_prediction(server, model, astronaut):
    from PIL import Image

    from apps.scoring import output_columns
    from tracking.prediction import PhotoModel

    tiny = io.BytesIO()
    Image.new("RGB", (12, 9), (200, 150, 120)).save(tiny, "PNG")
    face = b64(jpeg(astronaut))
    status, alone = post(f"{server.url}/invocations", rows({"image": face}))
    assert status == 200
    status, both = post(f"{server.url}/invocations", rows({"image": b64(tiny.getvalue())}, {"image": face}, {"image": "not base64!"}))
    assert status == 200
    tiny_row, face_row, bad_row = both["predictions"]
    assert face_row["status"] == "ok" and tiny_row["status"] == "ok"  # the tiny one falls back to a centre crop
    probabilities = [f"p_{i}" for i in range(18)]
    assert np.allclose([face_row[p] for p in probabilities], [alone["predictions"][0][p] for p in probabilities], atol=1e-6)
    assert bad_row["status"].startswith("image is not base64") and bad_row["class_id"] is None and bad_row["p_0"] is None
    # a request none of whose rows reaches the model answers with the same keys (the model's signature), all null
    status, refused = post(f"{server.url}/invocations", rows({"image": "not base64!"}, {"image": b64(b"hello")}))
    assert status == 200 and [set(r) for r in refused["predictions"]] == [set(face_row)] * 2, refused
    assert all(r["class_id"] is None and r["status"] for r in refused["predictions"])
    assert output_columns(model) == output_columns(PhotoModel(None)) == list(face_row)  # a served member: the same keys


def test_paths_only_under_allowed_roots_and_only_regular_files(server, model, roots):
    from apps.scoring import Scorer

    allowed, outside = roots["allowed"], roots["outside"]
    asked = [allowed / "face.jpg", outside / "secret.jpg", outside / "nothing-here.jpg", allowed / "pipe.jpg", allowed / "folder.jpg",
             allowed / "link.jpg", allowed / ".." / "outside" / "secret.jpg", Path("/dev/zero")]  # fmt: skip
    started = time.monotonic()
    status, body = post(f"{server.url}/invocations", {"dataframe_split": {"columns": ["path"], "data": [[str(p)] for p in asked]}})
    assert status == 200 and time.monotonic() - started < 60  # the FIFO did not block
    statuses = [p["status"] for p in body["predictions"]]
    assert statuses[0] == "ok"
    # outside the roots, an existing and a missing file read the same: the answer does not tell whether a file exists
    assert statuses[1] == statuses[2] == statuses[5] == statuses[6] == statuses[7] == "path refused: not under an allowed root"
    assert statuses[3] == statuses[4] == "not a regular file"
    status, body = post(f"{server.url}/invocations", rows({"image": b64(b"not a photo"), "path": str(allowed / "face.jpg")}))
    assert status == 200 and body["predictions"][0]["status"].startswith("both 'image' and 'path' given")  # not one ignored
    default = Served(Scorer(model, "m"))  # no roots configured: no path is read at all
    try:
        status, body = post(f"{default.url}/invocations", rows({"path": str(allowed / "face.jpg")}))
    finally:
        default.stop()
    assert status == 200 and body["predictions"][0]["status"].startswith("path refused: this server reads no server-side files")


def test_a_huge_pixel_count_is_refused_from_the_header_before_decoding(server, astronaut, monkeypatch: pytest.MonkeyPatch):
    from PIL import Image

    decoded = []
    load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self.size) or load(self))  # every pixel decode
    png = huge_png_header()
    assert len(png) < 200
    status, body = post(f"{server.url}/invocations", rows({"image": b64(png)}, {"image": b64(jpeg(astronaut))}))
    assert status == 200
    huge, face = body["predictions"]
    assert huge["status"] == "image too large: 13000x13000 pixels (limit 40000000 pixels)" and face["status"] == "ok"
    assert (13000, 13000) not in decoded and astronaut.size in decoded  # refused from the header; the face was decoded


def test_the_photos_of_one_request_share_a_pixel_budget(model, astronaut):
    from apps.scoring import Scorer, ScoringConfig

    pixels = astronaut.size[0] * astronaut.size[1]
    served = Served(Scorer(model, "m", replace(ScoringConfig(), max_request_pixels=int(pixels * 1.5))))
    try:
        status, body = post(f"{served.url}/invocations", rows({"image": b64(jpeg(astronaut))}, {"image": b64(jpeg(astronaut))}))
    finally:
        served.stop()
    first, second = body["predictions"]
    assert status == 200 and first["status"] == "ok"
    assert second["status"].startswith("refused: the request's photos are over") and second["class_id"] is None


def test_a_big_photo_is_shrunk_as_it_is_decoded(astronaut):
    from maskops.intake import IntakeLimits, decode_photo

    big = jpeg(astronaut.resize((4096, 4096)))
    assert decode_photo(big).size == (2048, 2048)  # JPEG draft: decoded at half size, never at full
    assert decode_photo(jpeg(astronaut)).size == astronaut.size  # a photo within the limit is left as it is
    assert decode_photo(big, IntakeLimits(max_side=1000)).size == (1000, 1000)


def test_nested_or_odd_json_is_a_400_never_a_500(server):
    invocations = f"{server.url}/invocations"
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"dataframe_split": {"columns": [[1]], "data": [[1]]}}', b'{"inputs": 3}'):
        status, answer = post(invocations, body, {})
        assert status == 400 and answer["message"], body[:40]
    # a row that is not a list was once dropped: one answer for two rows, and every answer after it one row off
    status, answer = post(invocations, {"dataframe_split": {"columns": ["image"], "data": ["aGk=", ["aGk="]]}})
    assert status == 400 and "each a list of values" in answer["message"]


def test_base64_with_line_breaks_or_as_a_data_url_is_read(server, astronaut):
    """What `base64 photo.jpg` prints (lines of 76 characters) and what a browser's FileReader gives (a data: URL)."""
    encoded = b64(jpeg(astronaut))
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76)) + "\n"
    status, body = post(
        f"{server.url}/invocations", rows({"image": wrapped}, {"image": f"data:image/jpeg;base64,{encoded}"}, {"image": "@@@"})
    )
    assert status == 200 and [p["status"] for p in body["predictions"][:2]] == ["ok", "ok"]
    assert body["predictions"][0]["p_0"] == body["predictions"][1]["p_0"]
    assert body["predictions"][2]["status"].startswith("image is not base64-encoded")


def test_request_limits_media_type_and_origin(server, astronaut):
    invocations = f"{server.url}/invocations"
    face = rows({"image": b64(jpeg(astronaut))})
    status, body = oversize(server.url, 5_000_000)  # refused from the header: the 5 MB are never read
    assert status == 413 and "over the limit" in body["message"]
    status, body = post(invocations, b"image\n/etc/passwd\n", {"Content-Type": "text/csv"})
    assert status == 415 and "application/json" in body["message"]
    status, body = post(invocations, json.dumps(face).encode(), {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415
    status, body = post(invocations, face, {"Origin": "https://evil.example"})
    assert status == 403 and "evil.example" in body["message"]
    status, body = post(invocations, face, {"Origin": server.url})  # same origin: allowed
    assert status == 200 and body["predictions"][0]["status"] == "ok"
    status, body = post(invocations, b"{not json", {})
    assert status == 400
    with urllib.request.urlopen(f"{server.url}/ping", timeout=10) as response:
        assert response.status == 200
    with urllib.request.urlopen(f"{server.url}/version", timeout=10) as response:
        assert json.load(response)["model"] == "models:/maskops-ensemble/1"


def oversize(url: str, length: int) -> tuple[int, dict]:
    """A request that declares a body of `length` bytes and sends none of it."""
    import http.client

    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.putrequest("POST", "/invocations")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


class HeldOn:
    """The real model, except that a request holding `marker` waits until released: a wedged request."""

    def __init__(self, model, marker: bytes):
        self.model, self.marker, self.release = model, marker, threading.Event()

    def predict(self, frame):
        if any(value == self.marker for value in frame["image"]):
            self.release.wait(60)
        return self.model.predict(frame)


def test_a_slow_request_times_out_while_another_is_answered(model, astronaut):
    from apps.scoring import Scorer, ScoringConfig

    held = HeldOn(model, jpeg(astronaut.rotate(90)))
    served = Served(Scorer(held, "m", replace(ScoringConfig(), timeout=3.0, workers=2)))
    answers: dict[str, tuple[int, dict]] = {}
    try:
        slow = threading.Thread(
            target=lambda: answers.__setitem__("slow", post(f"{served.url}/invocations", rows({"image": b64(held.marker)})))
        )
        slow.start()
        time.sleep(0.5)
        with urllib.request.urlopen(f"{served.url}/ping", timeout=10) as response:
            assert response.status == 200  # a worker at work is not a sick server
        started = time.monotonic()
        answers["fast"] = post(f"{served.url}/invocations", rows({"image": b64(jpeg(astronaut))}))
        fast_seconds = time.monotonic() - started
        slow.join(30)
    finally:
        held.release.set()
        served.stop()
    assert answers["slow"][0] == 504 and "longer than 3 s" in answers["slow"][1]["message"]
    assert answers["fast"][0] == 200 and answers["fast"][1]["predictions"][0]["status"] == "ok" and fast_seconds < 30


def test_maskops_serve_command(registry, roots, tmp_path: Path):
    tracking, registered = registry
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri, "MASKOPS_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "apps.cli", "serve", "--model", registered.ensemble_uri, "--port", str(port),
               "--allow-path-root", str(roots["allowed"]), "--max-pixels", "1000000"]  # fmt: skip
    with running(command, f"http://127.0.0.1:{port}/ping", tmp_path / "serve.log", env):
        status, body = post(
            f"http://127.0.0.1:{port}/invocations", rows({"path": str(roots["allowed"] / "face.jpg")}, {"path": "/etc/passwd"})
        )
    assert status == 200
    face, passwd = body["predictions"]
    assert face["status"] == "ok" and 0 <= face["class_id"] < 18 and abs(sum(face[f"p_{i}"] for i in range(18)) - 1) < 1e-6
    assert passwd["status"] == "path refused: not under an allowed root" and passwd["confidence"] is None
    refused = subprocess.run([*command[:-4], "--allow-path-root", str(tmp_path / "missing")], capture_output=True, text=True, env=env,
                             timeout=120)  # fmt: skip
    assert refused.returncode == 2 and "is not a folder" in refused.stderr
