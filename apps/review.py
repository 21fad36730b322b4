"""`maskops review`: a web page to go through label_issues, one suspect at a time, by mouse or keyboard.

Each suspect shows the person's seven photos (captioned with their stem; the photo in question outlined for a
mask label), the label it has, the label the models suggest and their probabilities. "Correct to ..." writes
a correction to labels/corrections.csv (for an age group: the age you type, which must lie in that group);
"Label is right" records that the label was checked. Both go to labels/reviewed.csv, decided suspects leave
the page, and "Undo" takes the last decision back. 40 suspects at a time, filtered by field.

It writes files that trigger retraining, so it trusts no request: the Host must name this server (no DNS
rebinding), a write must come from its own page (same Origin, a CSRF token issued in the page, JSON only,
16 KiB at most), and every decision is validated against the suspect it answers. Photos are served only from
the manifest (no path from the browser reaches the disk).
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import json
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote, urlencode

import pandas as pd
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from apps.http_checks import Refused, own_origin, read_body, require_json
from maskops.review_queue import (
    FIELD_VALUES,
    DecisionError,
    label_words,
    pending,
    record_decision,
    reviewer_name,
    undo_last,
)

PAGE_SIZE = 40
MAX_BODY = 16 * 1024
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
DECISION_KEYS = ("profile_id", "stem", "field", "given", "decision", "value", "target")
FIELD_NAMES = {"mask": "mask", "gender": "gender", "age_group": "age group"}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class ReviewState:
    """Where the suspects, the photos and the label files are."""

    def __init__(self, manifests: Path, dataset_root: Path, labels_dir: Path, reviewer: str = "reviewer"):
        self.manifests, self.dataset_root, self.labels_dir = Path(manifests), Path(dataset_root), Path(labels_dir)
        self.reviewer = reviewer_name(reviewer)
        self._photos, self._photos_stamp = pd.DataFrame(), None

    def issues(self) -> pd.DataFrame:
        path = self.manifests / "label_issues.parquet"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: materialize label_issues first (make demo, or from the UI)")
        return pd.read_parquet(path)

    def photos(self) -> pd.DataFrame:
        """Every training photo of the current labels: (profile_id, stem) -> path relative to the dataset root.
        Read again only when the manifest changes (a page asks for it once per photo)."""
        path = self.manifests / "relabeled_dataset.parquet"
        stamp = path.stat().st_mtime_ns
        if self._photos_stamp != stamp:
            self._photos = pd.read_parquet(path, columns=["image_id", "profile_id", "stem", "path"])
            self._photos_stamp = stamp
        return self._photos

    def queue(self, field: str = "") -> pd.DataFrame:
        return of_field(pending(self.issues(), self.labels_dir), field)


def of_field(queue: pd.DataFrame, field: str) -> pd.DataFrame:
    """The suspects of one field (all of them for '')."""
    return queue[queue["field"] == field].reset_index(drop=True) if field else queue


# -- the page ---------------------------------------------------------------------------------------------------------

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>maskops review</title>
<meta name="csrf-token" content="{token}">
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
nav a {{ margin-right: 1rem; }} nav a.current {{ font-weight: bold; }}
.issue {{ border: 1px solid #ddd; border-radius: 8px; padding: 1rem; margin-bottom: 1rem; }}
.issue:focus-within, .issue:focus {{ outline: 3px solid #4c72b0; }}
.photos {{ display: flex; flex-wrap: wrap; gap: 4px; }}
.photos figure {{ margin: 0; text-align: center; font-size: .8rem; color: #555; }}
.photos img {{ width: 120px; height: 120px; object-fit: cover; border: 3px solid transparent; display: block; }}
.photos figure.focus img {{ border-color: #c44e52; }} .photos figure.focus {{ color: #c44e52; font-weight: bold; }}
.error {{ color: #c44e52; }} .keys {{ color: #666; font-size: .85rem; }}
button {{ margin-right: .5rem; padding: .3rem .8rem; }} button.suggested {{ font-weight: bold; }}
</style></head>
<body>
<h1>Label review</h1>
<nav>{nav}</nav>
<p><span id="status">{status}</span> <button id="undo" type="button">Undo last decision</button> <span id="notice"></span></p>
<p class="keys">Keys: j / k next / previous suspect, c correct to the suggestion (type the age first for an age group),
r label is right, u undo.</p>
<div id="cards" data-field="{field}">{cards}</div>
<p><button id="more" type="button" {more_hidden}>Load more</button></p>
<script nonce="{nonce}">{script}</script>
</body></html>
"""

# Event handlers are attached here (the Content-Security-Policy allows no inline handlers); the server decides.
SCRIPT = """
const token = document.querySelector('meta[name=csrf-token]').content;
const cards = document.getElementById('cards'), statusLine = document.getElementById('status'), notice = document.getElementById('notice');
async function post(url, body) {
  const response = await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': token},
                                     body: JSON.stringify(body)});
  let answer;
  try { answer = await response.json(); } catch (e) { answer = {error: 'the server answered ' + response.status}; }
  return [response.ok, answer];
}
function current() { const active = document.activeElement; return active && active.closest ? active.closest('.issue') : null; }
function focusCard(card) { if (card) { card.focus(); card.scrollIntoView({block: 'nearest'}); } }
function suggestion(card) { return card.querySelector('button.correct').dataset.target; }
async function decide(card, decision, target) {
  const input = card.querySelector('input[name=value]');
  const body = {...JSON.parse(card.dataset.key), decision: decision, target: target || '',
                value: decision === 'correct' && input ? input.value : ''};
  const [ok, answer] = await post('api/decisions', body);
  if (!ok) { card.querySelector('.error').textContent = answer.error; return; }
  const next = card.nextElementSibling || card.previousElementSibling;
  card.remove();
  statusLine.textContent = answer.status;
  notice.textContent = '';
  focusCard(next);
}
async function undo() {
  const [ok, answer] = await post('api/undo', {});
  if (!ok) { notice.textContent = answer.error; return; }
  statusLine.textContent = answer.status;
  notice.textContent = 'undone: ' + answer.undone;
  const field = cards.dataset.field;
  if (answer.card && (!field || field === answer.field)) {
    cards.insertAdjacentHTML('afterbegin', answer.card);
    focusCard(cards.firstElementChild);
  }
}
cards.addEventListener('click', (event) => {
  const button = event.target.closest('button');
  if (!button) return;
  const card = button.closest('.issue');
  if (button.classList.contains('correct')) decide(card, 'correct', button.dataset.target);
  else if (button.classList.contains('keep')) decide(card, 'keep', '');
});
cards.addEventListener('keydown', (event) => {
  if (event.key !== 'Enter' || !event.target.matches('input[name=value]')) return;
  event.preventDefault();
  const card = event.target.closest('.issue');
  decide(card, 'correct', suggestion(card));
});
document.getElementById('undo').addEventListener('click', undo);
document.getElementById('more').addEventListener('click', async (event) => {
  const params = new URLSearchParams({field: cards.dataset.field, offset: cards.querySelectorAll('.issue').length});
  const response = await fetch('api/cards?' + params);
  const answer = await response.json();
  if (!response.ok) { notice.textContent = answer.error; return; }
  cards.insertAdjacentHTML('beforeend', answer.cards);
  event.target.hidden = !answer.more;
});
document.addEventListener('keydown', (event) => {
  if (event.target.matches('input, textarea, select') || event.ctrlKey || event.metaKey || event.altKey) return;
  const here = current(), card = here || cards.querySelector('.issue');
  if (event.key === 'j') focusCard(here ? here.nextElementSibling : card);
  else if (event.key === 'k') focusCard(here ? here.previousElementSibling : card);
  else if (event.key === 'c' && card) {
    const input = card.querySelector('input[name=value]');
    if (input && !input.value) input.focus(); else decide(card, 'correct', suggestion(card));
  } else if (event.key === 'r' && card) decide(card, 'keep', '');
  else if (event.key === 'u') undo();
  else return;
  event.preventDefault();
});
"""


def _card(issue, photos: pd.DataFrame) -> str:
    field, given, suggested = issue.field, issue.given, issue.suggested
    key = json.dumps({"profile_id": issue.profile_id, "stem": issue.stem, "field": field, "given": given})
    person = photos[photos["profile_id"] == issue.profile_id].sort_values("stem")
    figures = "".join(
        f'<figure{" class=focus" if row.stem == issue.stem else ""}><img src="photo/{quote(row.profile_id)}/{quote(row.stem)}" '
        f'alt="{html.escape(row.stem)}"><figcaption>{html.escape(row.stem)}</figcaption></figure>'
        for row in person.itertuples()
    )
    target = html.escape(issue.profile_id + (f" / {issue.stem}" if issue.stem else ""))
    age = (
        '<label>age in years <input name="value" type="number" min="0" max="120" inputmode="numeric" placeholder="type the age"></label> '
        if field == "age_group"
        else ""
    )
    others = sorted((v for v in FIELD_VALUES[field] if v != given), key=lambda v: v != suggested)  # the suggestion first
    buttons = "".join(
        f'<button type="button" class="correct{" suggested" if v == suggested else ""}" data-target="{html.escape(v)}">'
        f"Correct to {html.escape(label_words(field, v))}</button>"
        for v in others
    )
    return (
        f'<section class="issue" tabindex="-1" data-key="{html.escape(key)}">'
        f"<h2>{target}</h2>"
        f"<p>{FIELD_NAMES[field]}: labelled <b>{html.escape(label_words(field, given))}</b> (p = {issue.p_given:.2f}), "
        f"the models say <b>{html.escape(label_words(field, suggested))}</b> (p = {issue.p_suggested:.2f})</p>"
        f'<div class="photos">{figures}</div><p>{age}{buttons}'
        f'<button type="button" class="keep">Label is right</button></p>'
        f'<p class="error" role="alert"></p></section>'
    )


def _cards(queue: pd.DataFrame, photos: pd.DataFrame, offset: int) -> str:
    return "\n".join(_card(i, photos) for i in queue.iloc[offset : offset + PAGE_SIZE].itertuples())


def _nav(queue: pd.DataFrame, field: str) -> str:
    links = [("", f"all ({len(queue)})")] + [(f, f"{FIELD_NAMES[f]} ({int((queue['field'] == f).sum())})") for f in FIELD_NAMES]
    return "".join(
        f'<a href="./{"?" + urlencode({"field": f}) if f else ""}"{" class=current" if f == field else ""}>{html.escape(text)}</a>'
        for f, text in links
    )


def _status(remaining: int) -> str:
    return f"{remaining} suspects left to review" if remaining else "Nothing left to review."


# -- what every request must show -------------------------------------------------------------------------------------


def _check_host(request: Request, allowed_hosts: tuple[str, ...]) -> None:
    """The Host header must name this server (DNS rebinding points a foreign name at 127.0.0.1)."""
    host = request.headers.get("host", "").lower()
    server_host, port = request.scope.get("server") or ("", None)
    names = {*LOOPBACK_NAMES, *(h.lower() for h in allowed_hosts)}
    if server_host:
        names.add(f"[{server_host}]" if ":" in server_host else server_host)
    allowed = {f"{n}:{port}" for n in names} | (names if port == 80 else set())
    if host not in allowed:
        raise Refused(403, f"unknown Host {host!r}: open the review on http://127.0.0.1:{port}/")


def _check_write(request: Request, token: str) -> None:
    """A write comes from this server's own page: same Origin, JSON, the page's CSRF token."""
    origin = request.headers.get("origin")
    if origin is None:
        # browsers send Origin with every POST; a client without one (curl, a script) must run on this machine
        # and still needs the token from the page
        client = request.client.host if request.client else ""
        try:
            local = ipaddress.ip_address(client).is_loopback
        except ValueError:
            local = False
        if not local:
            raise Refused(403, "a request without an Origin header is accepted only from this machine")
    elif origin != own_origin(request):
        raise Refused(403, f"cross-site request refused: Origin {origin!r} is not this page")
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise Refused(403, "cross-site request refused (Sec-Fetch-Site)")
    require_json(request)
    if not hmac.compare_digest(request.headers.get("x-csrf-token", "").encode(), token.encode()):
        raise Refused(403, "missing or wrong CSRF token: reload the page")


async def _json_body(request: Request) -> dict[str, str]:
    """The body as a flat JSON object of text (at most MAX_BODY bytes)."""
    raw = await read_body(request, MAX_BODY)
    try:
        body = json.loads(raw or b"{}")
    except RecursionError:
        raise Refused(400, "the JSON is nested too deeply: send one flat object") from None
    except ValueError as exc:
        raise Refused(400, f"not JSON ({exc}): send one flat object") from None
    if not isinstance(body, dict):
        raise Refused(400, "send a JSON object")
    unknown = sorted(set(body) - set(DECISION_KEYS))
    if unknown:
        raise Refused(400, f"unknown keys {unknown}: expected some of {list(DECISION_KEYS)}")
    if not all(isinstance(v, str) for v in body.values()):
        raise Refused(400, "every value must be a string (the age too)")
    return body


Handler = Callable[[Request], Awaitable[Response]]


def create_app(state: ReviewState, allowed_hosts: tuple[str, ...] = ()) -> Starlette:
    """The review app; `allowed_hosts` are Host names it answers besides localhost and the address it is bound to."""
    token = secrets.token_urlsafe(32)

    def guarded(handler: Handler, write: bool = False) -> Handler:
        async def endpoint(request: Request) -> Response:
            nonce = secrets.token_urlsafe(16)
            try:
                _check_host(request, allowed_hosts)
                if write:
                    _check_write(request, token)
                response = await handler(request, nonce) if not write else await handler(await _json_body(request))
            except Refused as exc:
                response = JSONResponse({"error": str(exc)}, status_code=exc.status)
            except DecisionError as exc:
                response = JSONResponse({"error": str(exc)}, status_code=400)
            except FileNotFoundError as exc:  # label_issues not materialized yet
                response = JSONResponse({"error": str(exc)}, status_code=404)
            except OSError as exc:  # the labels folder read-only, a file where a folder belongs, a full disk
                where = exc.filename or state.labels_dir
                response = JSONResponse(
                    {
                        "error": f"cannot write the review files: {exc.strerror or exc} ({where}); make {state.labels_dir} a folder "
                        "that the user running `maskops review` can write, then try again"
                    },
                    status_code=503,
                )
            response.headers.update({k: v.format(nonce=nonce) for k, v in HEADERS.items()})
            return response

        return endpoint

    def field_of(request: Request) -> str:
        field = request.query_params.get("field", "")
        if field and field not in FIELD_NAMES:
            raise Refused(400, f"unknown field {field!r}: expected one of {', '.join(FIELD_NAMES)}")
        return field

    async def index(request: Request, nonce: str) -> Response:
        try:
            field, refused = field_of(request), None
        except Refused as exc:  # a typed address: the page says so, with the links to the fields there are
            field, refused = "", exc
        try:
            everything, photos = state.queue(), state.photos()  # the label files are read once per page
            queue, nav = of_field(everything, field), _nav(everything, field)
        except (FileNotFoundError, DecisionError) as exc:  # label_issues not materialized; a label file people broke
            page = PAGE.format(
                token=token, nav="", status=html.escape(str(exc)), field="", cards="", more_hidden="hidden", nonce=nonce, script=""
            )
            return HTMLResponse(page, status_code=404 if isinstance(exc, FileNotFoundError) else 409)
        if refused is not None:
            status = html.escape(f"{refused}: pick one of the links above")
            page = PAGE.format(token=token, nav=nav, status=status, field="", cards="", more_hidden="hidden", nonce=nonce, script="")
            return HTMLResponse(page, status_code=refused.status)
        more = "" if len(queue) > PAGE_SIZE else "hidden"
        page = PAGE.format(
            token=token, nav=nav, status=_status(len(everything)), field=field, cards=_cards(queue, photos, 0),
            more_hidden=more, nonce=nonce, script=SCRIPT,
        )  # fmt: skip
        return HTMLResponse(page)

    async def cards(request: Request, nonce: str) -> Response:
        offset = request.query_params.get("offset", "0")
        if not (offset.isascii() and offset.isdigit() and len(offset) <= 9):  # "²".isdigit(); int() refuses 4,301 digits
            raise Refused(400, "offset must be a number of cards")
        queue = state.queue(field_of(request))
        return JSONResponse({"cards": _cards(queue, state.photos(), int(offset)), "more": len(queue) > int(offset) + PAGE_SIZE})

    async def photo(request: Request, nonce: str) -> Response:
        photos = state.photos()
        match = photos[(photos["profile_id"] == request.path_params["profile"]) & (photos["stem"] == request.path_params["stem"])]
        if match.empty:
            return Response("no such photo", status_code=404)
        return FileResponse(state.dataset_root / match["path"].iloc[0])

    async def decisions(body: dict[str, str]) -> Response:
        fields = {k: body.get(k, "") for k in DECISION_KEYS}
        await run_in_threadpool(record_decision, state.labels_dir, state.photos(), state.issues(), reviewer=state.reviewer, **fields)
        remaining = len(state.queue())
        return JSONResponse({"remaining": remaining, "status": _status(remaining)})

    async def undo(body: dict[str, str]) -> Response:
        if body:
            raise Refused(400, "undo takes an empty JSON object")
        last = await run_in_threadpool(undo_last, state.labels_dir, state.photos(), state.reviewer, state.issues())
        queue = state.queue()
        key = (queue["profile_id"] == last["profile_id"]) & (queue["stem"] == last["stem"]) & (queue["field"] == last["field"])
        card = _card(next(queue[key].itertuples()), state.photos()) if key.any() else ""
        what = f"{last['decision']} {last['field']} of {last['profile_id']}" + (f"/{last['stem']}" if last["stem"] else "")
        return JSONResponse({"card": card, "field": last["field"], "undone": what, "remaining": len(queue), "status": _status(len(queue))})

    return Starlette(
        routes=[
            Route("/", guarded(index)),
            Route("/api/cards", guarded(cards)),
            Route("/photo/{profile}/{stem}", guarded(photo)),
            Route("/api/decisions", guarded(decisions, write=True), methods=["POST"]),
            Route("/api/undo", guarded(undo, write=True), methods=["POST"]),
        ]
    )
