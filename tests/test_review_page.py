"""The review loop: decisions on suspects become valid corrections, and the page works in a real browser (headless\nchromium), refusals included, as a reviewer sees them."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from maskops.corrections import read_corrections
from maskops.review_queue import DecisionError, pending, read_reviewed, record_decision
from tests.review_helpers import review_files
from tests.servers import BROWSER_ARGS, chromium, free_port, running

pytestmark = pytest.mark.slow


SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"
WORDS = {"young": "<30", "middle": "30-59", "old": ">=60"}


@pytest.fixture
def state(tiny_dataset: Path, tmp_path: Path):
    """Three suspects on the tiny dataset: a gender, an age group and a mask label."""
    home, train, issues = review_files(tiny_dataset, tmp_path)
    issues = issues.head(3)
    issues.to_parquet(home / "manifests/label_issues.parquet", index=False)
    return home, train, issues


def test_decisions_write_valid_corrections_and_leave_the_queue(state):
    home, train, issues = state
    labels = home / "labels"
    gender, age, mask = (r._asdict() for r in issues.itertuples(index=False))
    key = lambda row: {k: row[k] for k in ("profile_id", "stem", "field", "given")}  # noqa: E731
    ages = {"young": ("20", "21"), "middle": ("40", "41"), "old": ("70", "66")}[age["suggested"]]
    record_decision(labels, train, issues, **key(gender), decision="correct", value=gender["suggested"], reviewer="ana")
    with pytest.raises(DecisionError, match="the person's age in years"):
        record_decision(labels, train, issues, **key(age), decision="correct", value="")
    with pytest.raises(DecisionError, match="age"):
        record_decision(labels, train, issues, **key(age), decision="correct", value="very old")
    record_decision(labels, train, issues, **key(age), decision="correct", value=ages[0])
    record_decision(labels, train, issues, **key(age), decision="correct", value=ages[1])  # changed their mind: the last value
    record_decision(labels, train, issues, **key(mask), decision="keep")
    corrections = read_corrections(labels / "corrections.csv", train)  # the pipeline's own validation accepts the file
    assert sorted(zip(corrections["field"], corrections["value"], strict=True)) == [
        ("age", int(ages[1])),
        ("gender", 1 - int(train.set_index("profile_id").loc[gender["profile_id"], "gender"].iloc[0])),
    ]
    reviewed = read_reviewed(labels)
    assert list(reviewed["decision"]) == ["correct", "correct", "correct", "keep"] and reviewed["reviewer"].iloc[0] == "ana"
    assert pending(issues, labels).empty
    relabelled = issues.assign(given=issues["suggested"])  # once the label changes, the same person can be asked again
    assert len(pending(relabelled, labels)) == 3


def test_review_page_in_a_browser(state, tmp_path: Path, tiny_dataset: Path):
    """A reviewer's session: the keyboard corrects a gender, the page shows why a missing or contradictory age is
    refused, undo brings a decision back; every state the test sees is saved under test-artifacts/screenshots."""
    from playwright.sync_api import sync_playwright

    home, train, issues = state
    age_issue = issues[issues["field"] == "age_group"].iloc[0]
    group = WORDS[age_issue["suggested"]]
    wrong, right = {"young": ("45", "25"), "middle": ("70", "45"), "old": ("45", "65")}[age_issue["suggested"]]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
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
            shot = lambda name: page.screenshot(path=SCREENSHOTS / f"review-{name}.png", full_page=True)  # noqa: E731
            page.goto(base)
            cards = page.locator("section.issue")
            assert cards.count() == 3 and page.locator("#status").inner_text() == "3 suspects left to review"
            first_photo = cards.first.locator("img").first
            first_photo.wait_for()
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=first_photo.element_handle())
            assert cards.first.locator("figcaption").all_inner_texts() == sorted(train["stem"].unique())
            assert cards.nth(2).locator("figure.focus figcaption").inner_text() == "incorrect_mask"
            age_card = page.locator("section.issue", has_text="age group:")
            assert age_card.locator("input[name=value]").input_value() == ""  # nothing pre-filled
            assert f"the models say {group}" in age_card.inner_text()
            shot("1-three-suspects")

            page.keyboard.press("c")  # the first card, a gender, corrected to the suggestion from the keyboard
            page.get_by_text("2 suspects left to review").wait_for()
            shot("2-gender-corrected-by-keyboard")

            age_card.get_by_role("button", name=f"Correct to {group}").click()  # the age was never typed
            age_card.locator(".error").get_by_text("type the person's age").wait_for()
            shot("3-missing-age-refused")
            age_card.locator("input[name=value]").fill(wrong)  # an age outside the group on the button
            age_card.get_by_role("button", name=f"Correct to {group}").click()
            age_card.locator(".error").get_by_text(f"age {wrong} is in").wait_for()
            assert f"not {group}" in age_card.locator(".error").inner_text()
            shot("4-contradictory-age-refused")
            assert not (home / "labels/corrections.csv").read_text().count("age,")  # nothing written for the age

            age_card.locator("input[name=value]").fill(right)
            age_card.locator("input[name=value]").press("Enter")
            page.get_by_text("1 suspects left to review").wait_for()
            page.get_by_role("button", name="Undo last decision").click()  # takes the age back
            page.get_by_text("2 suspects left to review").wait_for()
            assert page.locator("#notice").inner_text().startswith("undone: correct age_group")
            shot("5-age-decision-undone")
            back = page.locator("section.issue", has_text="age group:")
            back.locator("input[name=value]").fill(right)
            back.get_by_role("button", name=f"Correct to {group}").click()
            page.get_by_text("1 suspects left to review").wait_for()
            page.locator("section.issue").get_by_role("button", name="Label is right").click()
            page.get_by_text("Nothing left to review.").wait_for()
            page.reload()
            page.get_by_text("Nothing left to review.").wait_for()
            shot("6-nothing-left")
            browser.close()
    corrections = read_corrections(home / "labels/corrections.csv", train)
    assert sorted(corrections["field"]) == ["age", "gender"] and corrections.set_index("field").loc["age", "value"] == int(right)
    assert list(read_reviewed(home / "labels")["decision"]) == ["correct", "correct", "keep"]
    assert not (home / "labels/.review.lock").exists()
    assert sorted(p.name for p in SCREENSHOTS.glob("review-*.png")) == [
        "review-1-three-suspects.png", "review-2-gender-corrected-by-keyboard.png", "review-3-missing-age-refused.png",
        "review-4-contradictory-age-refused.png", "review-5-age-decision-undone.png", "review-6-nothing-left.png",
    ]  # fmt: skip
