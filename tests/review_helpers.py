"""What the review tests share: suspects on the tiny dataset, the review app served for real, an HTTP client."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import uvicorn

from maskops.label_issues import ISSUE_COLUMNS
from maskops.layout import scan_competition
from maskops.review_queue import FIELD_VALUES
from tests.servers import free_port


def suspects(train: pd.DataFrame) -> pd.DataFrame:
    """Every label of the tiny dataset as a suspect (6 people: 6 genders, 6 age groups, 42 masks = 54), each given
    its real value and suggested the next other one: a gender, an age group, a mask label first."""
    people = train.drop_duplicates("profile_id").sort_values("profile_id")
    rows = []
    for field in ("gender", "age_group", "mask"):
        table = people if field != "mask" else train.sort_values(["profile_id", "stem"])
        for rec in table.itertuples():
            values = FIELD_VALUES[field]
            given = values[int(getattr(rec, field))]
            suggested = values[(values.index(given) + 1) % len(values)]
            rows.append((rec.profile_id, rec.stem if field == "mask" else "", field, given, suggested, 0.3, 0.6, 0.3, 1))
    table = pd.DataFrame(rows, columns=list(ISSUE_COLUMNS))
    firsts = table.groupby("field", sort=False).head(1).index
    return pd.concat([table.loc[firsts], table.drop(index=firsts)], ignore_index=True)


def review_files(tiny_dataset: Path, tmp_path: Path) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    """A state folder with the tiny dataset's relabeled manifest and its 54 suspects: (home, train, issues)."""
    home = tmp_path / "state"
    train = scan_competition(tiny_dataset).train
    (home / "manifests").mkdir(parents=True)
    train.to_parquet(home / "manifests/relabeled_dataset.parquet", index=False)
    issues = suspects(train)
    issues.to_parquet(home / "manifests/label_issues.parquet", index=False)
    return home, train, issues


@contextlib.contextmanager
def serving(app) -> Iterator[int]:
    """The ASGI `app` on a real uvicorn server on 127.0.0.1 in a thread; yields its port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the review server did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class Client:
    """Requests as the review page sends them (same Host and Origin, JSON, the page's CSRF token), any part
    of which a test can replace."""

    def __init__(self, port: int):
        self.port = port
        self.origin = f"http://127.0.0.1:{port}"
        status, page, _ = self.request("GET", "/")
        assert status == 200, page
        self.token = re.search(r'<meta name="csrf-token" content="([^"]+)">', page).group(1)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None, chunked: bool = False):
        """(status, body text, headers) of one request on a fresh connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            sent = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
            conn.request(method, path, body=iter([body]) if chunked else body, headers=sent, encode_chunked=chunked)
            response = conn.getresponse()
            return response.status, response.read().decode(), dict(response.getheaders())
        finally:
            conn.close()

    def post(self, path: str, payload, **headers) -> tuple[int, dict]:
        """POST `payload` (an object sent as JSON, or raw bytes) with the page's headers, `headers` replacing them
        (None drops one); the status and the JSON answer."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        sent = {"Origin": self.origin, "Content-Type": "application/json", "X-CSRF-Token": self.token}
        sent |= {k.replace("_", "-"): v for k, v in headers.items()}
        status, text, _ = self.request("POST", path, body, {k: v for k, v in sent.items() if v is not None})
        return status, json.loads(text)

    def decide(self, issue: pd.Series | dict, decision: str = "correct", value: str = "", target: str = "", **headers) -> tuple[int, dict]:
        key = {k: issue[k] for k in ("profile_id", "stem", "field", "given")}
        return self.post("/api/decisions", {**key, "decision": decision, "value": value, "target": target}, **headers)
