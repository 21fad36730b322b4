"""Runs the Great Expectations contracts for asset checks and keeps their reports, served over HTTP by `maskops docs`."""

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from pydantic import Field

from expectations.contract import DATA_DOCS_SITE, ContractResult, Validation, build_data_docs, run_contract
from expectations.report import render_html
from maskops.files import slug, write_atomic

DOCS_PORT = 8070
DEFAULT_DOCS_URL = f"http://127.0.0.1:{DOCS_PORT}"  # where `maskops docs` serves the reports
REPORTS_PATH, DATA_DOCS_PATH = "quality", "data-docs"  # the server's two folders: the summaries, GX's local site


class DataQuality(dg.ConfigurableResource):
    """Where GX keeps its project (Data Docs) and where the offline HTML summaries go."""

    gx_project_dir: str = Field(description="Great Expectations file project (Data Docs under gx/uncommitted/data_docs).")
    reports_dir: str = Field(description="Self-contained HTML summaries, one per asset check.")
    data_docs: bool = Field(default=True, description="Also build GX Data Docs (they load CSS from CDNs; the summaries do not).")
    docs_url: str = Field(
        default=DEFAULT_DOCS_URL,
        description="Base URL of `maskops docs`, which serves the summaries (/quality/) and GX Data Docs (/data-docs/): the "
        "links of asset checks (browsers refuse file:// links from a web page). Empty: link the files.",
    )

    def run(self, contract: str, asset: str, validations: list[Validation], level: str = "error",
            describe: Callable[[ContractResult], str] | None = None) -> tuple[ContractResult, Path]:  # fmt: skip
        """Validate and write the reports; `level` ("error" or "warn") is what a failure means; `describe` words the
        verdict line (default: the generic one of expectations.contract)."""
        result = run_contract(contract, asset, validations, Path(self.gx_project_dir) if self.data_docs else None)
        if self.data_docs and not self.docs_url:  # the links go to the files: no `maskops docs` to render them on demand
            build_data_docs(Path(self.gx_project_dir))
        if describe is not None:
            result.verdict = describe(result)
        report = Path(self.reports_dir) / f"{slug(asset)}.{contract}.html"
        summary = {
            "asset": asset, "contract": contract, "success": result.success, "expectations": len(result.outcomes),
            "failed": len(result.failed), "level": level, "verdict": result.verdict, "report": str(report), "report_url": self.report_link(report),
            "data_docs": self.data_docs_link(result), "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }  # fmt: skip
        write_atomic(report, render_html([result], f"{asset}: {contract}", level, self.from_summary(self.data_docs_link(result))))
        write_atomic(report.with_suffix(".json"), json.dumps(summary, indent=2))
        return result, report

    def report_link(self, report: Path) -> str:
        """The summary's address on `maskops docs` (its path when no docs server is configured)."""
        return f"{self.docs_url.rstrip('/')}/{REPORTS_PATH}/{report.name}" if self.docs_url else str(report)

    def from_summary(self, link: str | None) -> str | None:
        """`link` as a summary page (served under /quality/) writes it: relative when `maskops docs` serves both, so it
        follows the server to the host and port it runs on (`--port`), not the one the check ran with."""
        base = f"{self.docs_url.rstrip('/')}/"
        return f"../{link.removeprefix(base)}" if self.docs_url and link and link.startswith(base) else link

    def data_docs_link(self, result: ContractResult) -> str | None:
        """GX's page of these results on `maskops docs`, or None when Data Docs are off (GX's file:// URL without a server)."""
        if not result.docs_url:
            return None
        site = (Path(self.gx_project_dir) / DATA_DOCS_SITE).absolute().as_uri()
        if not self.docs_url or not result.docs_url.startswith(site):
            return result.docs_url
        return f"{self.docs_url.rstrip('/')}/{DATA_DOCS_PATH}{result.docs_url.removeprefix(site)}"
