"""`maskops review`: a web page to go through label_issues, one suspect at a time.

Each suspect shows the person's seven photos (the photo in question outlined for a mask label),
the label it has, the label the models suggest and their probabilities. "Correct" writes a
correction to labels/corrections.csv (for an age group: the age you type); "Label is right"
records that the label was checked. Both go to labels/reviewed.csv, and decided suspects leave
the page. Photos are served only from the manifest (no path from the browser reaches the disk).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from urllib.parse import quote

import pandas as pd
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from maskops.review_queue import DecisionError, pending, record_decision

AGE_HINT = {"young": 25, "middle": 45, "old": 65}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>maskops review</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
.issue {{ border: 1px solid #ddd; border-radius: 8px; padding: 1rem; margin-bottom: 1rem; }}
.photos img {{ width: 120px; height: 120px; object-fit: cover; margin: 2px; border: 3px solid transparent; }}
.photos img.focus {{ border-color: #c44e52; }}
.error {{ color: #c44e52; }}
button {{ margin-right: .5rem; padding: .3rem .8rem; }}
</style></head>
<body>
<h1>Label review</h1>
<p id="status">{status}</p>
{cards}
<script>
async function decide(button, decision) {{
  const card = button.closest('.issue');
  const input = card.querySelector('input[name=value]');
  const body = {{...JSON.parse(card.dataset.key), decision: decision, value: decision === 'correct' ? (input ? input.value : card.dataset.suggested) : ''}};
  const response = await fetch('api/decisions', {{method: 'POST', headers: {{'Content-Type': 'application/json'}}, body: JSON.stringify(body)}});
  const answer = await response.json();
  if (!response.ok) {{ card.querySelector('.error').textContent = answer.error; return; }}
  card.remove();
  document.getElementById('status').textContent = answer.remaining + ' suspects left to review';
}}
</script>
</body></html>
"""


class ReviewState:
    """Where the suspects, the photos and the label files are."""

    def __init__(self, manifests: Path, dataset_root: Path, labels_dir: Path, reviewer: str = "reviewer"):
        self.manifests, self.dataset_root, self.labels_dir, self.reviewer = Path(manifests), Path(dataset_root), Path(labels_dir), reviewer
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

    def queue(self) -> pd.DataFrame:
        return pending(self.issues(), self.labels_dir)


def _card(issue, photos: pd.DataFrame) -> str:
    key = json.dumps({"profile_id": issue.profile_id, "stem": issue.stem, "field": issue.field, "given": issue.given})
    person = photos[photos["profile_id"] == issue.profile_id].sort_values("stem")
    images = "".join(
        f'<img src="photo/{quote(row.profile_id)}/{quote(row.stem)}" alt="{html.escape(row.stem)}" title="{html.escape(row.stem)}"'
        f"{' class=focus' if row.stem == issue.stem else ''}>"
        for row in person.itertuples()
    )
    target = html.escape(issue.profile_id + (f" / {issue.stem}" if issue.stem else ""))
    value = (
        f'<label>age <input name="value" type="number" min="0" max="120" value="{AGE_HINT[issue.suggested]}"></label> '
        if issue.field == "age_group"
        else ""
    )
    return (
        f'<section class="issue" data-key="{html.escape(key)}" data-suggested="{html.escape(issue.suggested)}">'
        f"<h2>{target}</h2>"
        f"<p>{html.escape(issue.field)}: labelled <b>{html.escape(issue.given)}</b> (p = {issue.p_given:.2f}), "
        f"the models say <b>{html.escape(issue.suggested)}</b> (p = {issue.p_suggested:.2f})</p>"
        f'<div class="photos">{images}</div><p>{value}'
        f"<button onclick=\"decide(this, 'correct')\">Correct to {html.escape(issue.suggested)}</button>"
        f"<button onclick=\"decide(this, 'keep')\">Label is right</button></p>"
        f'<p class="error"></p></section>'
    )


def create_app(state: ReviewState) -> Starlette:
    async def index(request: Request) -> Response:
        try:
            queue, photos = state.queue(), state.photos()
        except FileNotFoundError as exc:
            return HTMLResponse(PAGE.format(status=html.escape(str(exc)), cards=""), status_code=404)
        status = f"{len(queue)} suspects left to review" if len(queue) else "Nothing left to review."
        return HTMLResponse(PAGE.format(status=status, cards="\n".join(_card(i, photos) for i in queue.itertuples())))

    async def photo(request: Request) -> Response:
        photos = state.photos()
        match = photos[(photos["profile_id"] == request.path_params["profile"]) & (photos["stem"] == request.path_params["stem"])]
        if match.empty:
            return Response("no such photo", status_code=404)
        return FileResponse(state.dataset_root / match["path"].iloc[0])

    async def decisions(request: Request) -> Response:
        try:
            body = await request.json()
            fields = {k: str(body.get(k, "")) for k in ("profile_id", "stem", "field", "given", "decision", "value")}
        except (ValueError, AttributeError):
            return JSONResponse({"error": "send a JSON object"}, status_code=400)
        try:
            record_decision(state.labels_dir, state.photos(), reviewer=state.reviewer, **fields)
        except DecisionError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"remaining": len(state.queue())})

    return Starlette(
        routes=[
            Route("/", index),
            Route("/photo/{profile}/{stem}", photo),
            Route("/api/decisions", decisions, methods=["POST"]),
        ]
    )
