"""The Great Expectations contracts on good and deliberately broken inputs (ephemeral GX context)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from expectations import balance, label_files, labels, splits, submission
from expectations.balance import BalanceBounds
from expectations.contract import build_data_docs, run_contract
from expectations.report import render_html
from maskops.corrections import CORRECTION_COLUMNS, correction_problems, read_label_table
from maskops.layout import scan_competition
from maskops.splits import split_profiles


@pytest.fixture(scope="module")
def manifest(tiny_dataset: Path) -> pd.DataFrame:
    return scan_competition(tiny_dataset).train


def _failed(result, expectation: str, column: str | None = None):
    hits = [o for o in result.failed if o.expectation == expectation and (column is None or o.column == column)]
    assert hits, f"expected {expectation} on {column} to fail; failed: {[(o.expectation, o.column) for o in result.failed]}"
    return hits[0]


def test_labels_pass_on_good_data(manifest):
    result = run_contract("labels", "raw_dataset", labels.validations(manifest))
    assert result.success, [(o.expectation, o.column, o.offending_rows) for o in result.failed]
    assert len(result.outcomes) == 15


def test_label_out_of_domain_is_named(manifest):
    broken = manifest.copy()
    broken.loc[3, "mask"] = 3
    result = run_contract("labels", "raw_dataset", labels.validations(broken))
    outcome = _failed(result, "expect_column_values_to_be_in_set", "mask")
    assert outcome.unexpected_count == 1 and outcome.offending_rows[0]["image_id"] == broken.loc[3, "image_id"]
    _failed(result, "expect_column_pair_values_to_be_equal", "class_id")  # the class no longer matches its parts


def test_profile_with_six_images_is_named(manifest):
    victim = manifest["profile_id"].iloc[0]
    broken = manifest[manifest["image_id"] != f"{victim}/normal"]
    result = run_contract("labels", "raw_dataset", labels.validations(broken))
    outcome = _failed(result, "expect_column_values_to_be_in_set", "profile_images")
    assert outcome.unexpected_count == 6 and {r["profile_id"] for r in outcome.offending_rows} == {victim}
    _failed(result, "expect_column_values_to_be_in_set", "profile_stems")


def test_an_empty_dataset_fails_the_labels_contract(manifest):
    """Every per-row expectation holds on no rows: an empty train.csv once passed as "all 14 expectations met"."""
    result = run_contract("labels", "raw_dataset", labels.validations(manifest.iloc[:0]))
    assert not result.success and _failed(result, "expect_table_row_count_to_be_between")


def test_a_cleaned_dataset_may_hold_fewer_photos_of_a_person_but_each_stem_once(manifest):
    """An exclusion of one photo, or an unreadable or duplicate photo, leaves a person 6 photos in cleaned_dataset:
    its blocking contract once failed on that and stopped every model downstream."""
    victim = manifest["profile_id"].iloc[0]
    cleaned = manifest[manifest["image_id"] != f"{victim}/mask3"]
    assert run_contract("labels", "cleaned_dataset", labels.validations(cleaned, complete_profiles=False)).success
    twice = pd.concat([cleaned, cleaned[cleaned["image_id"] == f"{victim}/normal"].assign(image_id=f"{victim}/normal-copy")])
    result = run_contract("labels", "cleaned_dataset", labels.validations(twice, complete_profiles=False))
    assert _failed(result, "expect_compound_columns_to_be_unique", None).unexpected_count == 2


def test_folder_name_disagreeing_with_labels_is_named(manifest):
    broken = manifest.copy()
    broken.loc[broken["profile_id"] == broken["profile_id"].iloc[0], "age"] = 99
    result = run_contract("labels", "raw_dataset", labels.validations(broken))
    assert _failed(result, "expect_column_values_to_be_in_set", "folder_matches_labels").unexpected_count == 7


def test_balance_flags_imbalance_and_passes_balance():
    rows = []
    for cid in range(18):
        mask, gender, age = cid // 6, (cid // 3) % 2, cid % 3
        n = [50, 10, 10][mask] * (1 if age < 2 else 0.02)  # the >=60 group nearly absent
        rows += [{"class_id": cid, "mask": mask, "gender": gender, "age_group": age}] * max(1, int(n))
    skewed = pd.DataFrame(rows)
    result = run_contract("balance", "raw_dataset", balance.validations(skewed, BalanceBounds.balanced()))
    _failed(result, "expect_column_values_to_be_between", "rarest_age_group_share")
    _failed(result, "expect_column_kl_divergence_to_be_less_than", "class_id")
    even = pd.DataFrame(
        [
            r
            for cid in range(18)
            for r in [{"class_id": cid, "mask": cid // 6, "gender": (cid // 3) % 2, "age_group": cid % 3}] * [50, 10, 10][cid // 6]
        ]
    )
    assert run_contract("balance", "generated_dataset", balance.validations(even, BalanceBounds.balanced())).success


def test_split_contract(manifest):
    split = split_profiles(manifest, n_folds=3, seed=0)
    assert run_contract("splits", "profile_split", splits.validations(split, manifest, manifest)).success
    twice = pd.concat([split, split.iloc[[0]].assign(fold=(split["fold"].iloc[0] + 1) % 3)], ignore_index=True)
    result = run_contract("splits", "profile_split", splits.validations(twice, manifest, manifest))
    assert _failed(result, "expect_column_values_to_be_unique", "profile_id").offending_rows[0]["profile_id"] == split["profile_id"].iloc[0]
    assert _failed(result, "expect_column_values_to_be_in_set", "folds").offending_rows[0]["profile_id"] == split["profile_id"].iloc[0]
    missing = split.iloc[1:]
    result = run_contract("splits", "profile_split", splits.validations(missing, manifest, manifest))
    assert _failed(result, "expect_column_values_to_be_in_set", "folds").offending_rows == [
        {"profile_id": split["profile_id"].iloc[0], "folds": 0}
    ]


def test_generated_image_from_a_validation_profile_is_named(manifest):
    split = split_profiles(manifest, n_folds=3, seed=0)
    val = split.loc[split["role"] == "validation", "profile_id"].iloc[0]
    train = split.loc[split["role"] == "train", "profile_id"].iloc[0]
    gen = pd.DataFrame(
        {
            "image_id": ["g1/mask1", "g2/mask1"],
            "profile_id": ["g1", "g2"],
            "source_profile_id": [train, val],
            "generator": ["maskpaint/1"] * 2,
        }
    )
    result = run_contract(
        "splits", "generated_dataset", splits.generated_validations(pd.concat([manifest.assign(generator=""), gen]), split)
    )
    outcome = _failed(result, "expect_column_values_to_be_in_set", "source_role")
    assert outcome.offending_rows == [{"image_id": "g2/mask1", "source_profile_id": val, "source_role": "validation"}]


def test_corrections_file_contract(manifest, tmp_path: Path):
    path = tmp_path / "corrections.csv"
    p = manifest["profile_id"].iloc[0]
    path.write_text(f"profile_id,stem,field,value,reason\n{p},,age,40,ok\nnobody_x_y_1,,age,30,x\n{p},,height,3,x\n")
    table = read_label_table(path, CORRECTION_COLUMNS)
    problems = {line: prob.message for line, prob in correction_problems(table, manifest, str(path)) if line}
    result = run_contract(
        "label_file",
        "label_corrections",
        label_files.validations(table, list(CORRECTION_COLUMNS), list(manifest["profile_id"].unique()), problems),
    )
    unknown = _failed(result, "expect_column_values_to_be_in_set", "profile_id")
    assert unknown.offending_rows[0]["line"] == 3 and unknown.offending_rows[0]["profile_id"] == "nobody_x_y_1"
    assert {r["line"] for r in _failed(result, "expect_column_values_to_be_in_set", "problem").offending_rows} == {3, 4}
    _failed(result, "expect_column_values_to_be_in_set", "field_lower")
    path.write_text("profile,value\nx,1\n")
    table = read_label_table(path, CORRECTION_COLUMNS)
    result = run_contract("label_file", "label_corrections", label_files.validations(table, list(CORRECTION_COLUMNS), [], {}))
    _failed(result, "expect_table_columns_to_match_set")


def test_submission_contract():
    info = [f"{i:04x}.jpg" for i in range(10)]
    good = pd.DataFrame({"ImageID": info, "ans": list(range(10))})
    assert run_contract("submission", "submission", submission.validations(good, info)).success
    short = good.iloc[:8]
    _failed(run_contract("submission", "submission", submission.validations(short, info)), "expect_table_row_count_to_equal")
    shuffled = good.iloc[[1, 0, *range(2, 10)]].reset_index(drop=True)
    result = run_contract("submission", "submission", submission.validations(shuffled, info))
    assert [r["ImageID"] for r in _failed(result, "expect_column_values_to_be_in_set", "in_info_order").offending_rows] == [
        info[1],
        info[0],
    ]
    bad = good.assign(ans=[*range(9), 18])
    _failed(run_contract("submission", "submission", submission.validations(bad, info)), "expect_column_values_to_be_between", "ans")
    # answers guessed for images without a crop: one in ten is too many (at most 5%), none is fine
    assert run_contract("submission", "submission", submission.validations(good, info, cropped_ids=set(info))).success
    blind = run_contract("submission", "submission", submission.validations(good, info, cropped_ids=set(info[1:])))
    assert [r["ImageID"] for r in _failed(blind, "expect_column_values_to_be_in_set", "has_crop").offending_rows] == [info[0]]


def test_html_summary_is_self_contained(manifest, tmp_path: Path):
    broken = manifest.copy()
    broken.loc[0, "gender"] = 5
    result = run_contract("labels", "raw_dataset", labels.validations(broken), tmp_path / "gx")
    page = render_html([result], "raw_dataset: labels")
    assert "expect_column_values_to_be_in_set" in page and broken.loc[0, "image_id"] in page
    assert "http://" not in page and "https://" not in page  # opens offline
    assert result.docs_url and build_data_docs(tmp_path / "gx") > 0 and Path(result.docs_url.removeprefix("file://")).exists()


def test_data_docs_render_every_validation_of_every_call_when_asked(manifest, tmp_path: Path):
    """A contract stores its suites and results and renders nothing (0.4 s a call); build_data_docs — what `maskops docs`
    calls before serving a page — renders every validation of every call, listed in the index, then nothing more
    until a contract runs again: its new result and its changed suite."""
    project = tmp_path / "gx"
    for asset in ("raw_dataset", "cleaned_dataset"):
        result = run_contract("balance", asset, balance.validations(manifest, BalanceBounds.balanced()), project)
    site = project / "gx" / "uncommitted" / "data_docs" / "local_site"
    assert result.docs_url.endswith("local_site/index.html") and not (site / "index.html").exists()
    assert build_data_docs(project) == 2 * 3 + 2 * 3  # two calls of a three-validation contract: results and suites
    assert len(list((site / "validations").rglob("*.html"))) == 2 * 3
    index = (site / "index.html").read_text()
    assert all(f"{asset}.balance.{name}" in index for asset in ("raw_dataset", "cleaned_dataset") for name in ("class_shares", "summary"))
    assert build_data_docs(project) == 0  # up to date: nothing rendered
    run_contract("balance", "raw_dataset", balance.validations(manifest, BalanceBounds.balanced()), project)
    assert build_data_docs(project) == 3 + 3 and len(list((site / "validations").rglob("*.html"))) == 3 * 3
    # a result GX cannot read (a contract killed while writing it) costs only its own page
    run_contract("balance", "cleaned_dataset", balance.validations(manifest, BalanceBounds.balanced()), project)
    results = project / "gx" / "uncommitted" / "validations"
    newest = max(results.rglob("*.json"), key=lambda p: p.stat().st_mtime)
    newest.write_text('{"half": ')
    with pytest.warns(UserWarning, match="cannot render"):
        build_data_docs(project)
    assert len(list((site / "validations").rglob("*.html"))) == 3 * 3 + 2


def test_file_project_stops_naming_an_empty_config_variables_file(manifest, tmp_path: Path):
    """GX parses the config variables file on every read of a context variable (~70 times a contract); a project whose
    file holds none (GX's template) stops naming it, and GX then reads no such file. One with a variable is kept."""
    import great_expectations as gx
    from great_expectations.core.config_provider import _ConfigurationVariablesConfigurationProvider

    def reads_variables_file(project: Path) -> bool:
        context = gx.get_context(mode="file", project_root_dir=str(project))
        return any(isinstance(p, _ConfigurationVariablesConfigurationProvider) for p in context.config_provider._providers.values())

    project = tmp_path / "gx"
    assert run_contract("labels", "raw_dataset", labels.validations(manifest), project).success
    assert not reads_variables_file(project)
    assert run_contract("labels", "raw_dataset", labels.validations(manifest), project).success  # the project still loads

    kept = tmp_path / "kept"
    gx.get_context(mode="file", project_root_dir=str(kept))  # scaffolded as GX does, then someone fills the file in
    (kept / "gx" / "uncommitted" / "config_variables.yml").write_text("# ours\nbucket: reports\n")
    assert run_contract("labels", "raw_dataset", labels.validations(manifest), kept).success
    assert reads_variables_file(kept)
    assert gx.get_context(mode="file", project_root_dir=str(kept)).config_provider.get_values()["bucket"] == "reports"


def test_observed_values_and_labels_in_words(manifest):
    """Every outcome says what it saw (a rule on each row too), and label codes read as words: mask 'incorrect',
    gender 'female', age group '>=60'."""
    broken = manifest.copy()
    row = broken.index[(broken["mask"] == 1) & (broken["gender"] == 1)][0]
    broken.loc[row, "age"] = 130  # out of range; its age group no longer matches
    result = run_contract("labels", "raw_dataset", labels.validations(broken))
    assert all(o.observed is not None for o in result.outcomes), [(o.expectation, o.column) for o in result.outcomes if o.observed is None]
    age = _failed(result, "expect_column_values_to_be_between", "age")
    assert age.observed == {"min": int(manifest["age"].min()), "max": 130}
    assert sorted(next(o for o in result.outcomes if o.column == "mask").observed) == ["incorrect", "not_wear", "wear"]
    assert "age in [0, 120]: 1 row breaks it" in result.verdict
    ages = _failed(result, "expect_column_pair_values_to_be_equal", "age_group")
    shown = ages.offending_rows[0]
    assert shown["age_group"] in ("<30", "30-59") and shown["age_group_from_age"] == ">=60"
    odd = broken.assign(mask=broken["mask"].where(broken.index != row, 7))
    (mask,) = [o for o in run_contract("labels", "raw_dataset", labels.validations(odd)).failed if o.column == "mask"]
    assert mask.observed == [7] and mask.offending_rows[0]["mask"] == 7  # a code out of the domain stays a code
    balanced = run_contract("balance", "raw_dataset", balance.validations(manifest, BalanceBounds.balanced()))
    shares = next(o for o in balanced.outcomes if o.column == "share")
    assert set(shares.observed) == {"min", "max"} and all(isinstance(r["class_id"], str) for r in shares.offending_rows)
    assert balance.describe(balanced).startswith("KL ")


def test_html_summary_uses_the_checks_severity(manifest):
    result = run_contract("balance", "raw_dataset", balance.validations(manifest, BalanceBounds.balanced()))
    assert not result.success
    warned, failed = render_html([result], "t", "warn"), render_html([result], "t", "error")
    assert "class='warn'>warning<" in warned and "summary warning" in warned and ">failed<" not in warned
    assert "class='bad'>failed<" in failed and "summary fail" in failed and ">warning<" not in failed
