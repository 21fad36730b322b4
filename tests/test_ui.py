"""The Dagster UI, in a real browser: `maskops ui` serves the code location on 127.0.0.1,
the asset graph shows up, the raw dataset is materialized from its page, and the
class-distribution chart renders."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.servers import BROWSER_ARGS, chromium, free_port, running

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"  # git-ignored: what each visited page looked like, for a person to look at


def _screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"ui-{name}.png"), full_page=True)


pytestmark = pytest.mark.slow


def _graphql(base: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{base}/graphql", data=json.dumps({"query": query}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["data"]


@pytest.fixture
def dagster_ui(tiny_dataset: Path, tmp_path: Path):
    port = free_port()
    env = {**os.environ, "MASKOPS_HOME": str(tmp_path / "state"), "MASKOPS_DATASET": str(tiny_dataset)}
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "apps.cli", "ui", "--port", str(port)]
    with running(cmd, f"{base}/server_info", tmp_path / "ui.log", env, cwd=REPO, timeout=120):
        yield base, tmp_path / "state"


def test_ui_shows_and_materializes_the_raw_dataset(dagster_ui, tmp_path: Path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    base, state = dagster_ui
    assert (state / "dagster/dagster.yaml").read_text().count("enabled: false") == 1  # telemetry off before first start
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 2400})  # tall enough for the whole (virtualized) catalog
        page.goto(f"{base}/assets")  # the catalog lists every asset
        with contextlib.suppress(PlaywrightTimeout):  # the "Join the Dagster community" modal of a fresh instance
            page.get_by_role("button", name="Skip").click(timeout=8000)
        for name in (
            "dataset_folder",
            "raw_dataset",
            "relabeled_dataset",
            "cleaned_dataset",
            "generated_dataset",
            "profile_split",
            "eval_dataset",
        ):
            page.get_by_text(name).first.wait_for(timeout=60000)
        _screenshot(page, "catalog")

        page.get_by_text("View lineage").first.click()  # the global lineage: the six groups, in the order of the flow
        for group in ("inputs", "datasets", "crops", "models", "serving", "review"):
            page.get_by_text(group, exact=True).first.wait_for(timeout=60000)
        _screenshot(page, "lineage")
        # a group's lineage shows the assets of other groups it reads as stubs named by the last part of their keys
        # only, so keys such as cropped/raw and model/raw would both read "raw"; maskops' keys are unique by themselves
        page.goto(f"{base}/locations/maskops/asset-groups/models/lineage")
        try:
            for name in ("raw_model", "relabeled_model", "raw_crops", "relabeled_crops", "profile_split"):
                page.get_by_text(name, exact=True).first.wait_for(timeout=60000)
        finally:
            _screenshot(page, "lineage-models")

        page.goto(f"{base}/assets/raw_dataset")
        page.locator("button", has_text="Materialize").first.click()
        page.get_by_role("button", name="Confirm").click(timeout=30000)  # eval_dataset comes from the same scan
        deadline = time.monotonic() + 180
        status = None
        while time.monotonic() < deadline:
            runs = _graphql(base, "{ runsOrError { ... on Runs { results { runId status } } } }")["runsOrError"]["results"]
            status = runs[0]["status"] if runs else None
            if status in {"SUCCESS", "FAILURE", "CANCELED"}:
                break
            time.sleep(2)
        assert status == "SUCCESS", f"run ended as {status}"
        run_id = runs[0]["runId"]

        page.goto(f"{base}/assets/raw_dataset?view=events")
        page.get_by_text("class_distribution").first.wait_for(timeout=60000)
        page.get_by_text("wear/male/<30").first.wait_for(timeout=60000)  # the class_counts table renders
        charts = list((state / "reports/figures/raw_dataset").glob("class_distribution-*.png"))
        assert len(charts) == 1 and charts[0].read_bytes()[:4] == b"\x89PNG"  # the chart is a file, linked by its path
        page.get_by_text(charts[0].name, exact=False).first.wait_for(timeout=30000)
        _screenshot(page, "raw_dataset-events")

        page.goto(f"{base}/assets/raw_dataset?view=checks")  # the data contracts ran with it
        page.get_by_text("labels_contract").first.wait_for(timeout=60000)
        page.get_by_text("balance_contract").first.wait_for(timeout=10000)
        page.get_by_text("rarest age group").first.wait_for(timeout=10000)  # a check says why in its description
        _screenshot(page, "raw_dataset-checks")
        browser.close()
    assert (state / "manifests/raw_dataset.parquet").exists()
    assert (state / "reports/quality/raw_dataset.labels.html").exists()
    # the UI's run executed its steps in its own process, as the named jobs do: a process per step (Dagster's default)
    # imported the code location and its libraries again for every step, 5x the time of the datasets and their contracts
    import dagster as dg

    with dg.DagsterInstance.from_config(str(state / "dagster")) as instance:
        engine = [e.message for e in instance.all_logs(run_id) if e.dagster_event and e.dagster_event.event_type_value == "ENGINE_EVENT"]
    assert any(m.startswith("Executing steps in process") for m in engine), engine
