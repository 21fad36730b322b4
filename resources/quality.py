"""Runs the Great Expectations contracts for asset checks and keeps their reports."""

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from pydantic import Field

from expectations.contract import ContractResult, Validation, run_contract
from expectations.report import render_html
from maskops.files import slug, write_atomic


class DataQuality(dg.ConfigurableResource):
    """Where GX keeps its project (Data Docs) and where the offline HTML summaries go."""

    gx_project_dir: str = Field(description="Great Expectations file project (Data Docs under gx/uncommitted/data_docs).")
    reports_dir: str = Field(description="Self-contained HTML summaries, one per asset check.")
    data_docs: bool = Field(default=True, description="Also build GX Data Docs (they load CSS from CDNs; the summaries do not).")

    def run(self, contract: str, asset: str, validations: list[Validation], level: str = "error") -> tuple[ContractResult, Path]:
        """Validate and write the reports; `level` ("error" or "warn") is what a failure means."""
        result = run_contract(contract, asset, validations, Path(self.gx_project_dir) if self.data_docs else None)
        report = Path(self.reports_dir) / f"{slug(asset)}.{contract}.html"
        summary = {
            "asset": asset, "contract": contract, "success": result.success, "expectations": len(result.outcomes),
            "failed": len(result.failed), "level": level, "report": str(report), "data_docs": result.docs_url,
            "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }  # fmt: skip
        write_atomic(report, render_html([result], f"{asset}: {contract}"))
        write_atomic(report.with_suffix(".json"), json.dumps(summary, indent=2))
        return result, report
