"""The review loop over HTTP: the demo reviewer, and the review server refusing what its own page would never send
(cross-site or foreign-host requests, other content types, missing tokens, oversize or nested bodies, rows that
name no suspect or contradict their card), escaping formulas, undoing, and never leaving its lock behind."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from apps.review import MAX_BODY, PAGE_SIZE, ReviewState, create_app
from maskops.cleaning import read_exclusions
from maskops.corrections import LabelFileError, read_corrections, read_label_table
from maskops.csv_safety import escape_formula, escape_formulas
from maskops.layout import scan_competition
from maskops.review_queue import DecisionError, ReviewLock, pending, read_reviewed, record_decision, undo_last
from maskops.synth.people import SynthConfig, synthesize
from maskops.synth.reviewer import demo_review
from tests.review_helpers import Client, review_files, serving
from tests.servers import free_port


def test_reviewer_catches_most_errors(tmp_path: Path):
    root = tmp_path / "data"
    synthesize(root, SynthConfig(profiles=20, seed=9, gender_noise=0.2, age_noise=0.2, mask_swap_noise=0.2), workers=2)
    labels = tmp_path / "labels"
    summary = demo_review(root, labels, catch_rate=0.7)
    noise = pd.read_csv(root / "ground_truth/label_noise.csv", dtype=str, keep_default_na=False)
    assert summary["caught_profiles"] == round(0.7 * noise["profile_id"].nunique())
    manifest = scan_competition(root).train
    corrections = read_corrections(labels / "corrections.csv", manifest)  # valid by our own rules
    assert set(corrections["profile_id"]) < set(noise["profile_id"])
    assert len(read_exclusions(labels / "exclusions.csv", manifest)) == 2
    (labels / "corrections.csv").write_text("profile_id,stem,field,value,reason\n")
    demo_review(root, labels)
    assert (labels / "corrections.csv").read_text() == "profile_id,stem,field,value,reason\n"


# -- the review server refuses what its page would never send ----------------------------------------------------------


@pytest.fixture
def review_home(tiny_dataset: Path, tmp_path: Path):
    return review_files(tiny_dataset, tmp_path)


@pytest.fixture
def served(review_home):
    """The review app on a real server in this process: (client, home, train, issues)."""
    home, train, issues = review_home
    with serving(create_app(ReviewState(home / "manifests", home.parent, home / "labels", reviewer="ana"))) as port:
        yield Client(port), home, train, issues


def _written(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "labels").glob("*")) if (home / "labels").exists() else []


def _issue(issues: pd.DataFrame, field: str) -> pd.Series:
    return issues[issues["field"] == field].iloc[0]


@pytest.mark.hostile
def test_a_cross_site_origin_is_refused(served):
    client, home, _, issues = served
    status, answer = client.decide(_issue(issues, "gender"), Origin="http://evil.example")
    assert status == 403 and "cross-site" in answer["error"]
    status, answer = client.decide(_issue(issues, "gender"), Origin="null")
    assert status == 403
    status, answer = client.decide(_issue(issues, "gender"), Sec_Fetch_Site="cross-site", Origin=None)
    assert status == 403
    assert _written(home) == []


@pytest.mark.hostile
def test_a_foreign_host_is_refused(served):
    client, home, _, issues = served
    status, text, _ = client.request("GET", "/", headers={"Host": f"evil.example:{client.port}"})  # DNS rebinding
    assert status == 403 and "unknown Host" in text
    status, _, _ = client.request("GET", "/", headers={"Host": "127.0.0.1:1"})
    assert status == 403
    status, _ = client.decide(_issue(issues, "gender"), Host="evil.example", Origin="http://evil.example")
    assert status == 403 and _written(home) == []
    for name in ("localhost", "127.0.0.1"):
        assert client.request("GET", "/", headers={"Host": f"{name}:{client.port}"})[0] == 200


@pytest.mark.hostile
def test_text_plain_is_refused(served):
    client, home, _, issues = served
    status, answer = client.decide(_issue(issues, "gender"), Content_Type="text/plain")
    assert status == 415 and "application/json" in answer["error"] and _written(home) == []
    status, _ = client.decide(_issue(issues, "gender"), Content_Type="application/json; charset=utf-8")
    assert status == 200


@pytest.mark.hostile
def test_a_missing_or_wrong_csrf_token_is_refused(served):
    client, home, _, issues = served
    for token in (None, "", client.token[:-1] + "x"):
        status, answer = client.decide(_issue(issues, "gender"), **{"X_CSRF_Token": token})
        assert status == 403 and "CSRF token" in answer["error"]
    assert _written(home) == []
    status, answer = client.decide(_issue(issues, "gender"))
    assert status == 200 and answer["remaining"] == len(issues) - 1


def test_a_request_without_origin_from_this_machine_is_accepted_with_the_token(served):
    """Browsers send Origin with every POST; curl on the same machine does not, and still needs the page's token."""
    client, _, _, issues = served
    assert client.decide(_issue(issues, "gender"), Origin=None, X_CSRF_Token=None)[0] == 403
    assert client.decide(_issue(issues, "gender"), Origin=None)[0] == 200


@pytest.mark.hostile
def test_an_oversize_body_is_refused(served):
    client, home, _, issues = served
    huge = {**_issue(issues, "gender")[["profile_id", "stem", "field", "given"]].to_dict(), "decision": "keep", "value": "x" * (5 << 20)}
    status, answer = client.post("/api/decisions", huge)
    assert status == 413 and str(MAX_BODY) in answer["error"]
    status, _, _ = client.request(  # no Content-Length: the stream is cut at the limit
        "POST", "/api/decisions", b"[" * (MAX_BODY + 10), {"Origin": client.origin, "Content-Type": "application/json",
                                                            "X-CSRF-Token": client.token}, chunked=True)  # fmt: skip
    assert status == 413
    assert _written(home) == []


@pytest.mark.hostile
def test_nested_or_malformed_json_is_refused_with_a_message(served):
    client, home, _, _ = served
    for body, message in [
        (b"[" * 8000 + b"]" * 8000, "nested too deeply"),
        (b'{"decision": "keep"', "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"profile_id": {"a": [1]}}).encode(), "string"),
        (json.dumps({"admin": "1"}).encode(), "unknown keys"),
    ]:
        status, answer = client.post("/api/decisions", body)
        assert status == 400 and message in answer["error"], (body[:20], answer)
    assert _written(home) == []


@pytest.mark.hostile
def test_every_row_is_validated_keep_rows_too(served):
    client, home, _, issues = served
    gender = _issue(issues, "gender")
    unknown = {**gender.to_dict(), "profile_id": "=cmd|' /C calc'!A0"}
    assert "no suspect" in client.decide(unknown, "keep")[1]["error"]
    assert "no suspect" in client.decide({**gender.to_dict(), "given": gender["suggested"]}, "keep")[1]["error"]
    assert "takes no value" in client.decide(gender, "keep", value="=1+1")[1]["error"]
    assert "characters long" in client.decide(gender, "keep", value="x" * 1000)[1]["error"]
    assert "control characters" in client.decide({**gender.to_dict(), "stem": "a\r\nb"}, "keep")[1]["error"]
    assert _written(home) == []
    assert client.decide(gender, "keep") == (200, {"remaining": len(issues) - 1, "status": f"{len(issues) - 1} suspects left to review"})


@pytest.mark.hostile
def test_formula_cells_are_escaped_in_the_review_files(review_home):
    home, train, issues = review_home
    evil = "=cmd|' /C calc'!A0"
    labels = home / "labels"
    record_decision(labels, train, issues, **_issue(issues, "gender")[["profile_id", "stem", "field", "given"]], decision="correct",
                    reviewer=evil)  # fmt: skip
    reviewed = (labels / "reviewed.csv").read_text()
    corrections = (labels / "corrections.csv").read_text()
    assert "'=cmd" in reviewed and ",=cmd" not in reviewed and ",'=cmd|' /C calc'!A0 in maskops review" in corrections
    assert [escape_formula(c) for c in ["=1", "+1", "-1", "@x", "\tx", "\rx", "a=1", "", 3]] == [
        "'=1", "'+1", "'-1", "'@x", "'\tx", "'\rx", "a=1", "", 3,
    ]  # fmt: skip
    frame = escape_formulas(pd.DataFrame({"n": [-1.5], "s": ["-1.5"], "=h": ["ok"]}))
    assert frame.to_dict("list") == {"n": [-1.5], "s": ["'-1.5"], "'=h": ["ok"]}  # numbers stay numbers


@pytest.mark.hostile
def test_a_hand_edited_corrections_file_keeps_every_row_and_column_through_a_decision(served):
    """A corrections.csv exported by a spreadsheet (trailing commas on every row) was once rewritten by a decision
    with its profile ids gone for good, and a column people added (a note) was dropped."""
    client, home, train, issues = served
    labels, (p0, p1) = home / "labels", sorted(train["profile_id"].unique())[:2]
    labels.mkdir()
    (labels / "corrections.csv").write_text(f"profile_id,stem,field,value,reason,note,\n{p0},,age,64,looks old,ask Bo,\n"
                                            f"{p1},normal,mask,incorrect,swapped,ticket 12,\n")  # fmt: skip
    gender = issues[(issues["field"] == "gender") & ~issues["profile_id"].isin([p0, p1])].iloc[0]
    assert client.decide(gender)[0] == 200
    table = pd.read_csv(labels / "corrections.csv", dtype=str, keep_default_na=False)
    assert table.values.tolist() == [
        [p0, "", "age", "64", "looks old", "ask Bo"],
        [p1, "normal", "mask", "incorrect", "swapped", "ticket 12"],
        [gender["profile_id"], "", "gender", gender["suggested"], f"ana in maskops review: {gender['given']} looked wrong", ""],
    ]
    assert len(read_corrections(labels / "corrections.csv", train)) == 3  # and the pipeline still reads it


@pytest.mark.hostile
def test_a_broken_label_file_is_named_on_the_page_and_no_file_is_written(served):
    """A reviewed.csv or corrections.csv people broke was a bare 500, and a broken reviewed.csv came to light only
    after corrections.csv had been rewritten: half a decision recorded."""
    client, home, _, issues = served
    labels = home / "labels"
    labels.mkdir()
    (labels / "reviewed.csv").write_text("profile_id,stem,field\n")
    status, answer = client.decide(_issue(issues, "gender"))
    assert status == 400 and "reviewed.csv: missing column(s)" in answer["error"] and "the header must be" in answer["error"]
    assert _written(home) == ["reviewed.csv"]  # corrections.csv was not written
    status, page, _ = client.request("GET", "/")
    assert status == 409 and "reviewed.csv: missing column(s)" in page
    (labels / "reviewed.csv").unlink()
    (labels / "corrections.csv").write_bytes(b"profile_id,stem,field,value,reason\nx,,age,40,caf\xe9\n")
    status, answer = client.decide(_issue(issues, "gender"))
    assert status == 400 and "corrections.csv: is not UTF-8 text" in answer["error"] and "save it as UTF-8 CSV" in answer["error"]
    assert _written(home) == ["corrections.csv"] and (labels / "corrections.csv").read_bytes().endswith(b"caf\xe9\n")


@pytest.mark.hostile
def test_a_contradictory_correction_is_refused(served):
    client, home, _, issues = served
    age = _issue(issues, "age_group")  # given and suggested are two different groups
    words = {"young": "<30", "middle": "30-59", "old": ">=60"}
    wrong_age = {"young": "45", "middle": "70", "old": "45"}[age["suggested"]]
    status, answer = client.decide(age, value=wrong_age)  # "Correct to <30" with 45: still 30-59
    assert status == 400 and f"age {wrong_age} is in" in answer["error"] and f"not {words[age['suggested']]}" in answer["error"]
    status, answer = client.decide(age, value="30", target=age["given"])  # "correct" to the label it has
    assert status == 400 and "already" in answer["error"]
    mask = _issue(issues, "mask")
    assert "already" in client.decide(mask, target=mask["given"])[1]["error"]
    assert "reload the page" in client.decide(mask, value=mask["given"])[1]["error"]  # value and target disagree
    assert "cannot correct" in client.decide(mask, target="chin")[1]["error"]
    assert _written(home) == []
    right_age = {"young": "25", "middle": "45", "old": "65"}[age["suggested"]]
    assert client.decide(age, value=right_age)[0] == 200
    assert client.decide(mask)[0] == 200  # to the suggestion
    corrections = pd.read_csv(home / "labels/corrections.csv", dtype=str)
    assert corrections[["field", "value"]].values.tolist() == [["age", right_age], ["mask", mask["suggested"]]]


@pytest.mark.hostile
def test_a_missing_age_is_refused(served):
    client, home, _, issues = served
    for value in ("", "  "):
        status, answer = client.decide(_issue(issues, "age_group"), value=value)
        assert status == 400 and "type the person's age" in answer["error"]
    assert "not an integer" in client.decide(_issue(issues, "age_group"), value="very old")[1]["error"]
    assert _written(home) == []
    assert "no age box is pre-filled" and 'name="value" type="number" min="0" max="120" inputmode' in client.request("GET", "/")[1]
    assert " value=" not in client.request("GET", "/")[1].split('name="value"')[1].split(">")[0]


def test_undo_takes_the_last_decision_back_from_both_files(served):
    client, home, _, issues = served
    labels = home / "labels"
    gender, age = _issue(issues, "gender"), _issue(issues, "age_group")
    first = {"young": "20", "middle": "40", "old": "70"}[age["suggested"]]
    second = {"young": "21", "middle": "41", "old": "71"}[age["suggested"]]
    assert client.decide(gender, "keep")[0] == 200
    assert client.decide(age, value=first)[0] == 200
    assert client.decide(age, value=second)[0] == 200  # changed their mind: one row in corrections.csv
    assert pd.read_csv(labels / "corrections.csv", dtype=str)["value"].tolist() == [second]
    status, answer = client.post("/api/undo", {})
    assert status == 200 and answer["undone"].startswith("correct age_group") and answer["card"] == ""  # still decided
    assert pd.read_csv(labels / "corrections.csv", dtype=str)["value"].tolist() == [first]  # the earlier decision is back
    status, answer = client.post("/api/undo", {})
    assert status == 200 and 'class="issue"' in answer["card"] and f"{age['profile_id']}</h2>" in answer["card"]
    assert pd.read_csv(labels / "corrections.csv", dtype=str).empty
    assert read_reviewed(labels)["decision"].tolist() == ["keep"]
    assert len(pending(issues, labels)) == len(issues) - 1  # the age suspect is back in the queue
    assert client.post("/api/undo", {})[1]["undone"].startswith("keep gender")
    assert read_reviewed(labels).empty and len(pending(issues, labels)) == len(issues)
    status, answer = client.post("/api/undo", {})
    assert status == 400 and "no decision to undo" in answer["error"]
    assert client.post("/api/undo", {}, X_CSRF_Token=None)[0] == 403  # undo writes too
    assert not (labels / ".review.lock").exists()


def test_pages_of_forty_a_filter_by_field_and_dagsters_age_words(served):
    client, _, _, issues = served
    page = client.request("GET", "/")[1]
    assert page.count('class="issue"') == PAGE_SIZE and '<button id="more" type="button" >' in page
    status, text, _ = client.request("GET", f"/api/cards?offset={PAGE_SIZE}")
    more = json.loads(text)
    assert status == 200 and more["cards"].count('class="issue"') == len(issues) - PAGE_SIZE and more["more"] is False
    masks = client.request("GET", "/?field=mask")[1]
    assert masks.count('class="issue"') == PAGE_SIZE and "age group:" not in masks and "gender:" not in masks
    ages = client.request("GET", "/?field=age_group")[1]
    assert ages.count('class="issue"') == 6 and "hidden>Load more" in ages.replace('type="button" hidden>', "hidden>")
    assert "&lt;30" in ages or "30-59" in ages or "&gt;=60" in ages
    assert not any(f">{w}<" in ages for w in ("young", "middle", "old"))  # Dagster's words, not the enum's
    assert "<figcaption>mask1</figcaption>" in page and "<figcaption>incorrect_mask</figcaption>" in page
    status, race, headers = client.request("GET", "/?field=race")  # a typed address: a page that says so, with the fields' links
    assert status == 400 and "unknown field &#x27;race&#x27;" in race and 'href="./?field=gender"' in race
    assert 'class="issue"' not in race and headers["content-type"].startswith("text/html")
    assert client.request("GET", "/api/cards?field=race")[0] == 400 and client.request("GET", "/api/cards?offset=-1")[0] == 400


@pytest.mark.hostile
def test_the_lock_is_taken_over_from_a_dead_writer_and_never_left_behind(review_home, caplog):
    home, train, issues = review_home
    labels = home / "labels"
    labels.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (labels / ".review.lock").write_text(f"{dead.pid}\n")  # a writer killed with SIGKILL leaves this behind
    with caplog.at_level(logging.WARNING, logger="maskops.review_queue"):
        record_decision(labels, train, issues, **_issue(issues, "gender")[["profile_id", "stem", "field", "given"]], decision="keep")
    assert f"pid {dead.pid}" in caplog.text and "taking it over" in caplog.text
    assert not (labels / ".review.lock").exists() and len(read_reviewed(labels)) == 1
    with ReviewLock(labels), pytest.raises(DecisionError, match=f"held by pid {os.getpid()}"), ReviewLock(labels, timeout=0.2):
        pass  # a live writer is waited for, then named
    assert not (labels / ".review.lock").exists()


@pytest.mark.hostile
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_maskops_review_leaves_no_lock_when_stopped(review_home, tiny_dataset: Path, tmp_path: Path, stop):
    home, _, issues = review_home
    port = free_port()
    env = {**os.environ, "MASKOPS_HOME": str(home), "MASKOPS_DATASET": str(tiny_dataset)}
    cmd = [sys.executable, "-m", "apps.cli", "review", "--port", str(port), "--reviewer", "ana"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client = Client(port)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode() if proc.poll() is not None else ""
                time.sleep(0.3)
        assert client.decide(_issue(issues, "gender"), "keep")[0] == 200
        proc.send_signal(stop)
        assert proc.wait(timeout=30) in (0, -stop)  # uvicorn shuts down gracefully, then re-raises the signal
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert len(read_reviewed(home / "labels")) == 1 and not (home / "labels/.review.lock").exists()


@pytest.mark.hostile
def test_undo_puts_back_the_hand_written_correction_a_decision_replaced(served):
    """Undo once removed the row outright when the correction it took back had replaced a row people wrote: the person
    silently went back to the raw label, and the row's note was lost."""
    client, home, _, issues = served
    labels, gender = home / "labels", _issue(issues, "gender")
    labels.mkdir()
    hand = f"profile_id,stem,field,value,reason,note\n{gender['profile_id']},,gender,{gender['given']},from the intake form,ticket 7\n"
    (labels / "corrections.csv").write_text(hand)
    assert client.decide(gender)[0] == 200
    assert pd.read_csv(labels / "corrections.csv", dtype=str)["value"].tolist() == [gender["suggested"]]
    assert client.post("/api/undo", {})[0] == 200
    assert (labels / "corrections.csv").read_text() == hand  # the row and its note, as they were


@pytest.mark.hostile
def test_rows_people_wrote_are_written_back_unescaped(served):
    """Every cell of corrections.csv was once escaped on each rewrite: a valid hand-written age "+54" became "'+54",
    which the pipeline refuses, and a reason "- looks older" was changed."""
    client, home, train, issues = served
    labels, (p0, *_) = home / "labels", sorted(train["profile_id"].unique())
    labels.mkdir()
    (labels / "corrections.csv").write_text(f"profile_id,stem,field,value,reason\n{p0},,age,+54,- looks older\n")
    gender = issues[(issues["field"] == "gender") & (issues["profile_id"] != p0)].iloc[0]
    assert client.decide(gender)[0] == 200
    assert (labels / "corrections.csv").read_text().splitlines()[1] == f"{p0},,age,+54,- looks older"
    assert len(read_corrections(labels / "corrections.csv", train)) == 2


@pytest.mark.hostile
def test_a_later_decision_on_the_same_suspect_supersedes_the_earlier_one(served):
    """'Label is right' after a correction (a changed mind, a stale page) once left the correction in corrections.csv
    beside a reviewed.csv that said the label was right."""
    client, home, train, issues = served
    labels, gender = home / "labels", _issue(issues, "gender")
    assert client.decide(gender)[0] == 200 and len(read_corrections(labels / "corrections.csv", train)) == 1
    assert client.decide(gender, "keep")[0] == 200
    assert read_corrections(labels / "corrections.csv", train).empty  # the label stays as given
    assert client.post("/api/undo", {})[1]["undone"].startswith("keep gender")
    assert pd.read_csv(labels / "corrections.csv", dtype=str)["value"].tolist() == [gender["suggested"]]  # the correction is back


@pytest.mark.hostile
def test_the_review_files_survive_a_linked_file_a_stray_name_and_odd_digits(review_home, tmp_path: Path):
    home, train, issues = review_home
    labels, gender = home / "labels", _issue(issues, "gender")
    kept = tmp_path / "repo" / "corrections.csv"  # under version control elsewhere, linked into the labels folder
    kept.parent.mkdir()
    kept.write_text("profile_id,stem,field,value,reason\n")
    labels.mkdir()
    (labels / "corrections.csv").symlink_to(kept)
    key = gender[["profile_id", "stem", "field", "given"]]
    record_decision(labels, train, issues, **key, decision="correct", reviewer="ana ")  # spaces around the name
    assert (labels / "corrections.csv").is_symlink() and len(read_corrections(kept, train)) == 1  # written through the link
    assert undo_last(labels, train, "ana ")["decision"] == "correct" and read_corrections(kept, train).empty  # its own, found
    with pytest.raises(DecisionError, match="reviewer's name is empty"):
        record_decision(labels, train, issues, **key, decision="keep", reviewer="  ")
    (home / "stray").write_text("a file where the labels folder belongs")
    with serving(create_app(ReviewState(home / "manifests", home.parent, home / "stray", reviewer="ana"))) as port:
        client = Client(port)
        status, answer = client.decide(gender)
        assert status == 503 and "cannot write the review files" in answer["error"] and str(home / "stray") in answer["error"]
        assert client.request("GET", "/api/cards?offset=%C2%B2")[0] == 400  # "²".isdigit(), but int("²") fails
    (labels / "folder.csv").mkdir()
    with pytest.raises(LabelFileError, match="cannot be read"):
        read_label_table(labels / "folder.csv", ("profile_id",))


def _decide(home: Path, train: pd.DataFrame, issues: pd.DataFrame, issue: pd.Series, decision: str, reviewer: str, **more) -> None:
    key = {k: issue[k] for k in ("profile_id", "stem", "field", "given")}
    record_decision(home / "labels", train, issues, **key, decision=decision, reviewer=reviewer, **more)


@pytest.mark.hostile
def test_decisions_of_several_reviewers_keep_the_two_files_consistent(review_home):
    """Found by a review: undoing under another reviewer's later decision put back a label that decision had replaced;
    keep → correct → keep lost a hand-written row; of two matching hand-written rows only one came back, at the end."""
    home, train, issues = review_home
    labels, gender = home / "labels", _issue(issues, "gender")
    labels.mkdir()
    p = gender["profile_id"]
    hand = (
        f"profile_id,stem,field,value,reason,note\nzz_first,,age,+54,- looks older,\n{p},,Gender,{gender['given']},form,ticket 7\n"
        f"{p},,gender,{gender['given']},form again,ticket 9\nzz_last,,age,70,old,\n"
    ).replace("zz_first", sorted(set(train["profile_id"]) - {p})[0])
    hand = hand.replace("zz_last", sorted(set(train["profile_id"]) - {p})[1])  # fmt: skip
    (labels / "corrections.csv").write_text(hand)
    corrections = lambda: (labels / "corrections.csv").read_text()  # noqa: E731
    _decide(home, train, issues, gender, "correct", "ana")
    assert corrections().splitlines()[2].startswith(f"{p},,gender,{gender['suggested']},ana in maskops review")  # in place
    assert undo_last(labels, train, "ana")["decision"] == "correct" and corrections() == hand  # both rows, where they were
    _decide(home, train, issues, gender, "keep", "ana")
    _decide(home, train, issues, gender, "correct", "bob")  # from a stale page
    _decide(home, train, issues, gender, "keep", "carl")
    assert corrections() == hand  # the label is right: the rows people wrote, as they were
    with pytest.raises(DecisionError, match="carl decided the same label after this"):
        undo_last(labels, train, "bob")
    assert undo_last(labels, train, "carl")["decision"] == "keep"
    assert f"{gender['suggested']},bob in maskops review" in corrections()  # bob's correction is back
    assert undo_last(labels, train, "bob")["decision"] == "correct" and corrections() == hand
    assert undo_last(labels, train, "ana")["decision"] == "keep" and corrections() == hand and read_reviewed(labels).empty


@pytest.mark.hostile
def test_a_reviewed_file_from_before_the_replaced_column_still_undoes(review_home):
    home, train, issues = review_home
    labels, gender, age = home / "labels", _issue(issues, "gender"), _issue(issues, "age_group")
    labels.mkdir()
    p, other = gender["profile_id"], gender["suggested"]
    (labels / "reviewed.csv").write_text(
        "profile_id,stem,field,given,decision,value,reviewer,decided_at\n"
        f"{p},,gender,{gender['given']},correct,{other},bob,2026-11-01T00:00:00+00:00\n"
        f"{p},,gender,{gender['given']},correct,{other},ana,2026-11-02T00:00:00+00:00\n"
    )
    (labels / "corrections.csv").write_text(f"profile_id,stem,field,value,reason\n{p},,gender,{other},ana in maskops review: x\n")
    _decide(home, train, issues, age, "keep", "ana")  # a write in the new format
    assert undo_last(labels, train, "ana")["decision"] == "keep"
    assert undo_last(labels, train, "ana")["decision"] == "correct"  # recorded before the column: bob's comes back
    assert read_corrections(labels / "corrections.csv", train)["reason"].str.startswith("bob in maskops review").all()


@pytest.mark.hostile
def test_links_to_nothing_or_in_a_loop_are_a_503_and_only_label_files_follow_links(review_home, tmp_path: Path):
    from maskops.files import write_atomic

    home, _, issues = review_home
    labels, gender = home / "labels", _issue(issues, "gender")
    labels.mkdir()
    hand = f"profile_id,stem,field,value,reason\n{gender['profile_id']},,gender,{gender['given']},form\n"
    (labels / "corrections.csv").write_text(hand)
    with serving(create_app(ReviewState(home / "manifests", home.parent, labels, reviewer="ana"))) as port:
        client = Client(port)
        for target in (labels / "reviewed.csv", tmp_path / "nowhere" / "deep" / "reviewed.csv"):  # a loop; a link to nothing
            (labels / "reviewed.csv").unlink(missing_ok=True)
            (labels / "reviewed.csv").symlink_to(target)
            status, answer = client.decide(gender)
            assert status == 503 and "a symbolic link to a file that does not exist, or a loop" in answer["error"]
            assert (labels / "corrections.csv").read_text() == hand  # refused before either file was written
        assert not (tmp_path / "nowhere").exists()  # nothing made where the link points
        assert client.request("GET", "/api/cards?offset=" + "9" * 5000)[0] == 400
    elsewhere = tmp_path / "elsewhere.bin"
    elsewhere.write_bytes(b"kept")
    (tmp_path / "link.bin").symlink_to(elsewhere)
    write_atomic(tmp_path / "link.bin", b"new")  # any other file maskops writes: the link is replaced, not followed
    assert not (tmp_path / "link.bin").is_symlink() and elsewhere.read_bytes() == b"kept"


@pytest.mark.hostile
def test_undo_is_refused_once_the_pipeline_has_relisted_the_label(review_home):
    """Undoing a correction the pipeline has already run on left the page's new card of that label (given the
    corrected value) contradicting corrections.csv once someone decided it."""
    home, train, issues = review_home
    labels, gender = home / "labels", _issue(issues, "gender")
    _decide(home, train, issues, gender, "correct", "ana")
    relisted = issues.assign(given=issues["given"].where(issues.index != gender.name, gender["suggested"]))
    with pytest.raises(DecisionError, match="the pipeline has run since this decision"):
        undo_last(labels, train, "ana", relisted)
    assert undo_last(labels, train, "ana", issues)["decision"] == "correct"  # not re-listed yet: undone
