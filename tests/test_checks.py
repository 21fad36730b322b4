"""Asset checks in Dagster: failures carry the offending rows, blocking ones stop downstream work,
and declarative automation does not run past them."""

from __future__ import annotations

import html
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from assets.checks import balance_check, checks, corrections_check
from assets.datasets import relabeled_dataset
from assets.labels import label_corrections
from assets.sources import sources
from expectations.balance import BalanceBounds
from maskops.layout import scan_competition
from tests.conftest import pipeline_resources, stub_asset

RAW_LABELS = next(c for c in checks if dg.AssetCheckKey(dg.AssetKey("raw_dataset"), "labels_contract") in c.check_keys)


def _resources(tiny_dataset: Path, tmp_path: Path) -> dict:
    return pipeline_resources(tmp_path, tiny_dataset)


def _raw_asset(manifest: pd.DataFrame) -> dg.AssetsDefinition:
    return stub_asset("raw_dataset", manifest)


def _evaluation(result, key: str, check: str):
    (found,) = [e for e in result.get_asset_check_evaluations() if e.asset_key.to_user_string() == key and e.check_name == check]
    return found


def _materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


@pytest.fixture(scope="module")
def manifest(tiny_dataset: Path) -> pd.DataFrame:
    return scan_competition(tiny_dataset).train


def test_blocking_labels_failure_stops_downstream(manifest, tiny_dataset: Path, tmp_path: Path):
    victim = manifest["profile_id"].iloc[2]
    broken = manifest[manifest["image_id"] != f"{victim}/normal"].reset_index(drop=True)
    result = dg.materialize(
        [_raw_asset(broken), sources, label_corrections, relabeled_dataset, RAW_LABELS],
        resources=_resources(tiny_dataset, tmp_path),
        raise_on_error=False,
    )
    evaluation = _evaluation(result, "raw_dataset", "labels_contract")
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    offending = evaluation.metadata["offending_rows"].value
    assert any(row["profile_id"] == victim for rows in offending.values() for row in rows)
    assert "profile_images" in {r.data["column"] for r in evaluation.metadata["failed_expectations"].records}
    report = Path(evaluation.metadata["report_file"].value)
    assert report.exists() and victim in report.read_text()
    assert evaluation.metadata["report"].value == "http://127.0.0.1:8070/quality/raw_dataset.labels.html"  # `maskops docs`
    assert evaluation.description.startswith("2 of 15 failed: profile_images in [7]: 6 rows break it (e.g. image_id=")
    assert evaluation.metadata["observed"].value["labels/profile_images"] == [6]
    assert "relabeled_dataset" not in _materialized(result) and "raw_dataset" in _materialized(result)


def test_passing_check_lets_downstream_run(manifest, tiny_dataset: Path, tmp_path: Path):
    result = dg.materialize(
        [_raw_asset(manifest), sources, label_corrections, relabeled_dataset, RAW_LABELS],
        resources=_resources(tiny_dataset, tmp_path),
    )
    assert _evaluation(result, "raw_dataset", "labels_contract").passed
    assert "relabeled_dataset" in _materialized(result)


def test_unknown_id_in_corrections_blocks_relabeling(manifest, tiny_dataset: Path, tmp_path: Path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels/corrections.csv").write_text("profile_id,stem,field,value,reason\nghost_female_Asian_30,,age,31,typo\n")
    result = dg.materialize(
        [_raw_asset(manifest), sources, label_corrections, relabeled_dataset, corrections_check],
        resources=_resources(tiny_dataset, tmp_path),
        raise_on_error=False,
    )
    evaluation = _evaluation(result, "label_corrections", "corrections_contract")
    assert not evaluation.passed
    rows = [r for rows in evaluation.metadata["offending_rows"].value.values() for r in rows]
    assert {"line": 2, "profile_id": "ghost_female_Asian_30"}.items() <= rows[0].items()
    assert "relabeled_dataset" not in _materialized(result)


def test_automation_waits_for_blocking_checks(manifest, tiny_dataset: Path, tmp_path: Path):
    victim = manifest["profile_id"].iloc[0]
    broken = manifest[manifest["image_id"] != f"{victim}/normal"].reset_index(drop=True)
    state = {"manifest": manifest}

    raw = stub_asset("raw_dataset", lambda: state["manifest"])
    resources = _resources(tiny_dataset, tmp_path)
    ours = dg.Definitions(assets=[raw, sources, label_corrections, relabeled_dataset], asset_checks=[RAW_LABELS], resources=resources)
    eager_only = dg.map_asset_specs(
        lambda spec: spec.replace_attributes(automation_condition=dg.AutomationCondition.eager()), [relabeled_dataset]
    )
    control = dg.Definitions(assets=[raw, sources, label_corrections, *eager_only], asset_checks=[RAW_LABELS], resources=resources)
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([raw, sources, label_corrections, relabeled_dataset, RAW_LABELS], resources=resources, instance=instance).success
    cursors = {
        name: dg.evaluate_automation_conditions(defs=d, instance=instance).cursor for name, d in (("ours", ours), ("control", control))
    }

    def requested(name: str, defs: dg.Definitions) -> int:
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursors[name])
        cursors[name] = result.cursor
        return result.get_num_requested(dg.AssetKey("relabeled_dataset"))

    state["manifest"] = broken  # new raw data that breaks the labels contract
    assert not dg.materialize([raw, RAW_LABELS], resources=resources, instance=instance, raise_on_error=False).success
    assert requested("control", control) == 1  # eager() alone would run past the failed check
    assert requested("ours", ours) == 0

    state["manifest"] = manifest  # fixed data, the check passes
    assert dg.materialize([raw, RAW_LABELS], resources=resources, instance=instance).success
    assert requested("ours", ours) == 1


def test_balance_check_says_why_in_one_line_with_the_check_severity(manifest, tiny_dataset: Path, tmp_path: Path):
    """The verdict names the numbers and their bounds, in words (age group >=60, not 2), passed or not; the offline
    report calls a warning a warning."""
    old = manifest[manifest["age_group"] == 2]["profile_id"].unique()
    rare = manifest[~manifest["profile_id"].isin(old[1:])].reset_index(drop=True)  # one person aged 60+ left
    strict = balance_check("raw_dataset", BalanceBounds.observe(), dg.AssetCheckSeverity.WARN)
    lenient = BalanceBounds(
        min_share=0.0, max_share=1.0, max_ratio=1e9, max_kl=10.0, min_rarest_age_group_share=0.0, age_balanced_target=True
    )
    result = dg.materialize([_raw_asset(rare), strict], resources=_resources(tiny_dataset, tmp_path), raise_on_error=False)
    evaluation = _evaluation(result, "raw_dataset", "balance_contract")
    share = (rare["age_group"] == 2).mean()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert f"rarest age group >=60 at {share:.0%} < 10%" in evaluation.description and "KL " in evaluation.description
    observed = evaluation.metadata["observed"].value
    assert observed["summary/rarest_age_group_share"] == pytest.approx(share, abs=1e-4) and observed["class_distribution/class_id"] > 0
    failed = {r.data["column"]: r.data for r in evaluation.metadata["failed_expectations"].records}
    assert float(failed["rarest_age_group_share"]["observed"]) == pytest.approx(share, abs=1e-4)
    page = Path(evaluation.metadata["report_file"].value).read_text()
    assert "class='warn'>warning</span>" in page and ">failed<" not in page and html.escape(evaluation.description) in page

    passing = dg.materialize([_raw_asset(manifest), balance_check("raw_dataset", lenient, dg.AssetCheckSeverity.ERROR)],
                             resources=_resources(tiny_dataset, tmp_path))  # fmt: skip
    evaluation = _evaluation(passing, "raw_dataset", "balance_contract")
    assert evaluation.passed and evaluation.description.startswith("KL ") and "<= 10" in evaluation.description
    assert "rarest age group" in evaluation.description and ">= 0%" in evaluation.description


def test_every_asset_check_has_a_description():
    from assets.definitions import defs

    graph = defs.resolve_asset_graph()
    specs = [graph.get_check_spec(key) for key in graph.asset_check_keys]
    assert len(specs) >= len(checks) and all(spec.description for spec in specs), [s.key for s in specs if not s.description]


def test_docs_server_serves_the_reports_and_nothing_else(tmp_path: Path):
    import threading
    import urllib.error
    import urllib.request

    from apps.launch import docs_server

    (tmp_path / "quality").mkdir()
    (tmp_path / "quality/raw_dataset.labels.html").write_text("<p>14 of 14</p>")
    (tmp_path / "secret.txt").write_text("no")
    server = docs_server({"quality": tmp_path / "quality", "data-docs": tmp_path / "site"})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(f"{base}/quality/raw_dataset.labels.html", timeout=5) as response:
            assert response.read() == b"<p>14 of 14</p>" and response.headers["Content-Type"].startswith("text/html")
        for outside in ("/secret.txt", "/quality/../secret.txt", "/data-docs/index.html"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(base + outside, timeout=5)
            assert refused.value.code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_docs_server_renders_data_docs_when_a_page_is_asked_for(manifest, tmp_path: Path):
    """Contracts only store their results; `maskops docs` renders GX's pages before serving one, so the asset checks'
    Data Docs link opens the current site — and a project it cannot render still leaves the summaries served."""
    import threading
    import urllib.request

    from apps.launch import docs_server
    from expectations import balance
    from expectations.contract import build_data_docs, run_contract

    project = tmp_path / "gx"
    run_contract("balance", "raw_dataset", balance.validations(manifest, BalanceBounds.balanced()), project)
    site = project / "gx" / "uncommitted" / "data_docs" / "local_site"
    (tmp_path / "quality").mkdir()
    (tmp_path / "quality/r.html").write_text("<p>summary</p>")

    def broken() -> None:
        raise OSError("disk gone")

    server = docs_server({"quality": tmp_path / "quality", "data-docs": site},
                         refresh={"data-docs": lambda: build_data_docs(project), "quality": broken})  # fmt: skip
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert not (site / "index.html").exists()
        with urllib.request.urlopen(f"{base}/data-docs/index.html", timeout=60) as response:
            assert "raw_dataset.balance.summary" in response.read().decode()
        with urllib.request.urlopen(f"{base}/quality/r.html", timeout=10) as response:
            assert response.read() == b"<p>summary</p>"
    finally:
        server.shutdown()
        server.server_close()


def test_a_summary_links_its_data_docs_on_whatever_port_maskops_docs_serves(manifest, tmp_path: Path):
    """The checks ran with `maskops docs` expected on 8070 (the asset checks' metadata links say so); a summary page
    served on another port (`maskops docs --port`) still opens its Data Docs page: its link is relative."""
    import re
    import threading
    import urllib.parse
    import urllib.request

    from apps.launch import docs_server
    from expectations import balance
    from expectations.contract import DATA_DOCS_SITE, build_data_docs
    from resources.quality import DEFAULT_DOCS_URL, DataQuality

    quality = DataQuality(gx_project_dir=str(tmp_path / "gx"), reports_dir=str(tmp_path / "quality"), docs_url=DEFAULT_DOCS_URL)
    result, report = quality.run("balance", "raw_dataset", balance.validations(manifest, BalanceBounds.balanced()))
    assert quality.data_docs_link(result).startswith(f"{DEFAULT_DOCS_URL}/data-docs/")  # Dagster's link: absolute
    server = docs_server({"quality": tmp_path / "quality", "data-docs": tmp_path / "gx" / DATA_DOCS_SITE},
                         refresh={"data-docs": lambda: build_data_docs(tmp_path / "gx")})  # fmt: skip
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = f"http://127.0.0.1:{server.server_address[1]}/quality/{report.name}"
    try:
        with urllib.request.urlopen(page, timeout=30) as response:
            links = re.findall(r"href='([^']+)'", response.read().decode())
        assert links and all(not link.startswith("http") for link in links), links
        with urllib.request.urlopen(urllib.parse.urljoin(page, links[0]), timeout=60) as response:
            assert response.status == 200 and "<html" in response.read().decode().lower()
    finally:
        server.shutdown()
        server.server_close()
