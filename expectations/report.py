"""A self-contained HTML data-quality summary (no external requests: opens offline)."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime

from expectations.contract import ContractResult, rounded

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1d1d1f}h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;font-size:.85rem}td,th{border:1px solid #ddd;padding:.35rem .5rem;vertical-align:top;text-align:left}
th{background:#f4f4f6}.ok{color:#17803d;font-weight:600}.bad{color:#b42318;font-weight:600}.warn{color:#9a5b00;font-weight:600}
code{font-size:.8rem;white-space:pre-wrap}.summary{padding:.6rem 1rem;border-radius:6px;display:inline-block}.pass{background:#e8f6ee}
.fail{background:#fdecea}.warning{background:#fff4dc}.verdict{font-size:1rem}
"""
# what a failed contract means, by the check's severity: a warning asks a person to look, an error stops the data
LEVELS = {"warn": ("warning", "warn", "warning"), "error": ("failed", "bad", "fail")}


def _json(value) -> str:
    return html.escape(json.dumps(rounded(value), default=str, indent=None)[:600])


def render_html(results: list[ContractResult], title: str, level: str = "error", data_docs: str | None = None) -> str:
    """One page for an asset's contracts: the verdict in a line, then every expectation, failures first, with offending rows.

    `level`: the check's severity ("warn": failures are an amber warning, "error": a red failure); `data_docs`: a link
    to GX's pages of the same results."""
    word, mark_class, box = LEVELS[level]
    total = sum(len(r.outcomes) for r in results)
    failed = sum(len(r.failed) for r in results)
    verdict = "pass" if failed == 0 else box
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='summary {verdict}'>{total - failed} of {total} expectations met"
        f" &middot; {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}</p>",
    ]
    for result in results:
        state = "<span class='ok'>passed</span>" if result.success else f"<span class='{mark_class}'>{word}</span>"
        parts.append(f"<h2>{html.escape(result.contract)} contract &mdash; {state}</h2>")
        parts.append(f"<p class='verdict'>{html.escape(result.verdict)}</p>")
        if data_docs or result.docs_url:
            link = html.escape(data_docs or result.docs_url or "")
            parts.append(f"<p>The same results in Great Expectations Data Docs (styled when online): <a href='{link}'>{link}</a></p>")
        parts.append(
            "<table><tr><th></th><th>validation</th><th>expectation</th><th>column</th><th>expected</th><th>observed</th><th>unexpected</th><th>offending rows</th></tr>"
        )
        for o in sorted(result.outcomes, key=lambda o: o.success):
            mark = "<span class='ok'>&#10003;</span>" if o.success else f"<span class='{mark_class}'>&#10007;</span>"
            rows = "<br>".join(_json(r) for r in o.offending_rows) or (html.escape(o.error) if o.error else "")
            parts.append(
                f"<tr><td>{mark}</td><td>{html.escape(o.validation)}</td><td>{html.escape(o.expectation)}</td><td>{html.escape(str(o.column or ''))}</td>"
                f"<td><code>{_json(o.expected)}</code></td><td><code>{_json(o.observed)}</code></td><td>{'' if o.unexpected_count is None else o.unexpected_count}</td>"
                f"<td><code>{rows}</code></td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
