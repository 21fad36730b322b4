"""Data contracts as Dagster asset checks: Great Expectations suites from expectations/.

Blocking where a failure must stop downstream work (labels, splits, label files); balance
is a warning where a person should look (raw, relabeled, cleaned) and an error where
balancing is the point (generated), without blocking.
"""

import json
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd

from assets.metadata import table
from assets.policies import with_its_asset
from expectations import balance, label_files, splits
from expectations import labels as labels_contract
from expectations import submission as submission_contract
from expectations.balance import BalanceBounds
from expectations.contract import ContractResult, Validation, rounded
from maskops.cleaning import EXCLUSION_COLUMNS, exclusion_problems
from maskops.corrections import CORRECTION_COLUMNS, correction_problems
from resources import DataQuality, LabelFiles

LABELLED = ("raw_dataset", "relabeled_dataset", "cleaned_dataset", "generated_dataset")


def _cell(value) -> str:
    return json.dumps(rounded(value), default=str)[:300]


def _plain(value):
    """Rounded, and JSON that Dagster stores (numbers of any kind as numbers, anything else as text)."""
    return json.loads(json.dumps(rounded(value), default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def check_result(result: ContractResult, report: Path, data_quality: DataQuality,
                 severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:  # fmt: skip
    """Pass/fail, the verdict in one line (the check's description), each failed expectation with what it observed and
    expected, offending rows in words, and links to the reports served by `maskops docs`."""
    failures = pd.DataFrame(
        [{"validation": o.validation, "expectation": o.expectation, "column": o.column or "", "expected": _cell(o.expected),
          "observed": _cell(o.observed), "unexpected": o.unexpected_count or 0,
          "offending_rows": " / ".join(_cell(r) for r in o.offending_rows) or (o.error or "")} for o in result.failed],
        columns=["validation", "expectation", "column", "expected", "observed", "unexpected", "offending_rows"],
    )  # fmt: skip
    metadata = {
        "verdict": dg.MetadataValue.text(result.verdict),
        "expectations_met": dg.MetadataValue.text(f"{len(result.outcomes) - len(result.failed)} of {len(result.outcomes)}"),
        "failed_expectations": table(failures),
        "failed_count": dg.MetadataValue.int(len(result.failed)),
        "observed": dg.MetadataValue.json(_plain({f"{o.validation}/{o.column or o.expectation}": o.observed for o in result.outcomes})),
        "offending_rows": dg.MetadataValue.json(
            _plain({f"{o.validation}/{o.expectation}/{o.column}": o.offending_rows for o in result.failed})
        ),
        "report": _link(data_quality.report_link(report)),
        "report_file": dg.MetadataValue.path(str(report)),
    }
    if (docs := data_quality.data_docs_link(result)) is not None:
        metadata["data_docs"] = _link(docs)
    return dg.AssetCheckResult(passed=result.success, severity=severity, description=result.verdict, metadata=metadata)


def _link(target: str) -> dg.MetadataValue:
    return dg.MetadataValue.url(target) if target.startswith(("http://", "https://")) else dg.MetadataValue.path(target)


def _verdict(data_quality: DataQuality, contract: str, asset: str, validations: list[Validation],
             severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
             describe: Callable[[ContractResult], str] | None = None) -> dg.AssetCheckResult:  # fmt: skip
    """Run a contract through the data-quality resource and turn its outcome into the check's result."""
    level = "warn" if severity == dg.AssetCheckSeverity.WARN else "error"
    result, report = data_quality.run(contract, asset, validations, level, describe)
    return check_result(result, report, data_quality, severity)


COMPLETE_PROFILES = ("raw_dataset", "relabeled_dataset")  # cleaning drops single photos (exclusions, unreadable, duplicates)


def labels_check(asset: str) -> dg.AssetChecksDefinition:
    complete = asset in COMPLETE_PROFILES
    profiles = "7 images per profile" if complete else "each of a profile's 7 stems at most once (cleaning drops photos)"

    @dg.asset_check(
        asset=asset,
        name="labels_contract",
        blocking=True,
        automation_condition=with_its_asset(asset),
        description=f"Every label in its domain and consistent; {profiles}; folder names agree.",
    )
    def _check(manifest: pd.DataFrame, data_quality: DataQuality) -> dg.AssetCheckResult:
        return _verdict(data_quality, "labels", asset, labels_contract.validations(manifest, complete_profiles=complete))

    return _check


def balance_check(asset: str, bounds: BalanceBounds, severity: dg.AssetCheckSeverity) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name="balance_contract",
        description=f"Class shares, largest/smallest class ratio, KL divergence from the target distribution, share of the rarest "
        f"age group; a failure is {'a warning (a person should look)' if severity == dg.AssetCheckSeverity.WARN else 'an error'}.",
    )
    def _check(manifest: pd.DataFrame, data_quality: DataQuality) -> dg.AssetCheckResult:
        return _verdict(data_quality, "balance", asset, balance.validations(manifest, bounds), severity, balance.describe)

    return _check


@dg.asset_check(
    asset="profile_split",
    name="splits_contract",
    blocking=True,
    automation_condition=with_its_asset("profile_split"),
    additional_ins={"raw_dataset": dg.AssetIn("raw_dataset"), "relabeled_dataset": dg.AssetIn("relabeled_dataset")},
    description="No person in two folds, every person in the split, per-class shares of each fold near the whole.",
)
def splits_check(
    profile_split: pd.DataFrame, raw_dataset: pd.DataFrame, relabeled_dataset: pd.DataFrame, data_quality: DataQuality
) -> dg.AssetCheckResult:
    return _verdict(data_quality, "splits", "profile_split", splits.validations(profile_split, raw_dataset, relabeled_dataset))


@dg.asset_check(
    asset="generated_dataset",
    name="generated_split_contract",
    blocking=True,
    automation_condition=with_its_asset("generated_dataset"),
    additional_ins={"profile_split": dg.AssetIn("profile_split")},
    description="Generated people derive from training profiles only and are new people.",
)
def generated_split_check(generated_dataset: pd.DataFrame, profile_split: pd.DataFrame, data_quality: DataQuality) -> dg.AssetCheckResult:
    return _verdict(data_quality, "splits", "generated_dataset", splits.generated_validations(generated_dataset, profile_split))


def _row_problems(problems) -> dict[int, str]:
    by_line: dict[int, str] = {}
    for line, problem in problems:
        if line is not None:
            by_line[line] = "; ".join(filter(None, [by_line.get(line, ""), problem.message]))
    return by_line


def label_file_check(asset: str, columns: tuple[str, ...], problems_of, path_of, what: str) -> dg.AssetChecksDefinition:
    """The contract of a human-edited label file: the domain's own row checks, reported through Great Expectations."""

    @dg.asset_check(asset=asset, name=f"{asset.removeprefix('label_')}_contract", blocking=True,
                    automation_condition=with_its_asset(asset),
                    additional_ins={"raw_dataset": dg.AssetIn("raw_dataset")}, description=what)  # fmt: skip
    def check(rows: pd.DataFrame, raw_dataset: pd.DataFrame, data_quality: DataQuality, labels: LabelFiles) -> dg.AssetCheckResult:
        problems = _row_problems(problems_of(rows, raw_dataset, str(path_of(labels))))
        found = label_files.validations(rows, list(columns), list(raw_dataset["profile_id"].unique()), problems)
        return _verdict(data_quality, "label_file", asset, found)

    return check


corrections_check = label_file_check("label_corrections", CORRECTION_COLUMNS, correction_problems, lambda labels: labels.corrections,
                                     "Schema, known profiles and images, allowed values, no conflicting rows, a reason on every row.")  # fmt: skip
exclusions_check = label_file_check("label_exclusions", EXCLUSION_COLUMNS, exclusion_problems, lambda labels: labels.exclusions,
                                    "Schema, known profiles and images, a reason on every row.")  # fmt: skip


@dg.asset_check(asset="submission", name="submission_contract", blocking=True, automation_condition=with_its_asset("submission"),
                additional_ins={"eval_dataset": dg.AssetIn("eval_dataset"), "eval_crops": dg.AssetIn("eval_crops")},
                description="One answer per evaluation image, in eval/info.csv's order (as scan read it), a class id 0..17; "
                f"at most {submission_contract.MAX_WITHOUT_CROP:.0%} of the answers guessed for images without a readable crop.")  # fmt: skip
def submission_check(
    submission: pd.DataFrame, eval_dataset: pd.DataFrame, eval_crops: pd.DataFrame, data_quality: DataQuality
) -> dg.AssetCheckResult:
    order = eval_dataset.sort_values("order")["stem"].astype(str).tolist()
    cropped = set(eval_crops.loc[eval_crops["crop_path"].notna(), "stem"].astype(str))
    return _verdict(data_quality, "submission", "submission", submission_contract.validations(submission, order, cropped))


checks = [
    *(labels_check(asset) for asset in LABELLED),
    *(balance_check(asset, BalanceBounds.observe(), dg.AssetCheckSeverity.WARN) for asset in LABELLED[:3]),
    balance_check("generated_dataset", BalanceBounds.balanced(), dg.AssetCheckSeverity.ERROR),
    splits_check,
    generated_split_check,
    corrections_check,
    exclusions_check,
    submission_check,
]
