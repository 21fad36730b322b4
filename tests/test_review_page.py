"""The review loop: decisions on suspects become valid corrections, and the page works in a real browser."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from maskops.corrections import read_corrections
from maskops.label_issues import ISSUE_COLUMNS
from maskops.layout import scan_competition
from maskops.review_queue import DecisionError, pending, read_reviewed, record_decision
from tests.servers import BROWSER_ARGS, chromium, free_port, running

pytestmark = pytest.mark.slow


def _issues(train: pd.DataFrame) -> pd.DataFrame:
    """Three hand-made suspects on the tiny dataset: a gender, an age group and a mask label."""
    people = train.drop_duplicates("profile_id").sort_values("profile_id")
    first, second, third = people["profile_id"].iloc[:3]
    gender = {0: "male", 1: "female"}
    rows = [
        (first, "", "gender", gender[int(people["gender"].iloc[0])], gender[1 - int(people["gender"].iloc[0])], 0.2, 0.8, 0.6, 7),
        (second, "", "age_group", "young" if people["age_group"].iloc[1] else "middle", "old", 0.3, 0.6, 0.3, 7),
        (third, "incorrect_mask", "mask", "incorrect", "not_wear", 0.35, 0.55, 0.2, 1),
    ]
    return pd.DataFrame(rows, columns=list(ISSUE_COLUMNS))


@pytest.fixture
def state(tiny_dataset: Path, tmp_path: Path):
    home = tmp_path / "state"
    train = scan_competition(tiny_dataset).train
    (home / "manifests").mkdir(parents=True)
    train.to_parquet(home / "manifests/relabeled_dataset.parquet", index=False)
    issues = _issues(train)
    issues.to_parquet(home / "manifests/label_issues.parquet", index=False)
    return home, train, issues


def test_decisions_write_valid_corrections_and_leave_the_queue(state):
    home, train, issues = state
    labels = home / "labels"
    gender, age, mask = (r._asdict() for r in issues.itertuples(index=False))
    key = lambda row: {k: row[k] for k in ("profile_id", "stem", "field", "given")}  # noqa: E731
    record_decision(labels, train, **key(gender), decision="correct", value=gender["suggested"], reviewer="ana")
    with pytest.raises(DecisionError, match="the person's age in years"):
        record_decision(labels, train, **key(age), decision="correct", value="")
    with pytest.raises(DecisionError, match="age"):
        record_decision(labels, train, **key(age), decision="correct", value="very old")
    record_decision(labels, train, **key(age), decision="correct", value="70")
    record_decision(labels, train, **key(age), decision="correct", value="66")  # changed their mind: one row, the last value
    record_decision(labels, train, **key(mask), decision="keep")
    corrections = read_corrections(labels / "corrections.csv", train)  # the pipeline's own validation accepts the file
    assert sorted(zip(corrections["field"], corrections["value"], strict=True)) == [
        ("age", 66),
        ("gender", 1 - int(train.set_index("profile_id").loc[gender["profile_id"], "gender"].iloc[0])),
    ]
    reviewed = read_reviewed(labels)
    assert list(reviewed["decision"]) == ["correct", "correct", "correct", "keep"] and reviewed["reviewer"].iloc[0] == "ana"
    assert pending(issues, labels).empty
    relabelled = issues.assign(given=issues["suggested"])  # once the label changes, the same person can be asked again
    assert len(pending(relabelled, labels)) == 3


def test_review_page_in_a_browser(state, tmp_path: Path, tiny_dataset: Path):
    from playwright.sync_api import sync_playwright

    home, train, _ = state
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MASKOPS_HOME": str(home), "MASKOPS_DATASET": str(tiny_dataset)}
    with running(
        [sys.executable, "-m", "apps.cli", "review", "--port", str(port), "--reviewer", "ana"], f"{base}/", tmp_path / "review.log", env
    ):
        with pytest.raises(urllib.error.HTTPError) as refused:  # only photos of the manifest are served
            urllib.request.urlopen(f"{base}/photo/..%2F..%2F..%2Fetc/passwd", timeout=10)
        assert refused.value.code == 404
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(), args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(base)
            cards = page.locator("section.issue")
            assert cards.count() == 3 and page.locator("#status").inner_text() == "3 suspects left to review"
            first_photo = cards.first.locator("img").first
            first_photo.wait_for()
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=first_photo.element_handle())
            assert cards.first.locator("img").count() == 7 and cards.nth(2).locator("img.focus").count() == 1

            cards.first.get_by_role("button", name="Correct to").click()  # gender
            page.get_by_text("2 suspects left to review").wait_for()
            age_card = page.locator("section.issue", has_text="age_group")
            age_card.locator("input[name=value]").fill("")
            age_card.get_by_role("button", name="Correct to").click()
            age_card.locator(".error").get_by_text("age in years").wait_for()  # refused, stays on the page
            age_card.locator("input[name=value]").fill("71")
            age_card.get_by_role("button", name="Correct to").click()
            page.get_by_text("1 suspects left to review").wait_for()
            page.locator("section.issue").get_by_role("button", name="Label is right").click()
            page.get_by_text("0 suspects left to review").wait_for()
            page.reload()
            page.get_by_text("Nothing left to review.").wait_for()
            browser.close()
    corrections = read_corrections(home / "labels/corrections.csv", train)
    assert sorted(corrections["field"]) == ["age", "gender"] and corrections.set_index("field").loc["age", "value"] == 71
    assert list(read_reviewed(home / "labels")["decision"]) == ["correct", "correct", "keep"]
