"""Running a data contract with Great Expectations 1.x and reading its outcome.

A contract is a list of validations: a DataFrame plus the expectations it must meet. Derived
columns (a class id recomputed from its parts, images per profile, ...) turn rules GX has no
expectation for into plain column expectations, so every failure still points at rows.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from maskops.files import slug

OFFENDING_ROWS = 5
_SKIP_KWARGS = {"column", "result_format", "batch_id", "meta", "notes", "catch_exceptions", "rendered_content", "id"}


@dataclass
class Validation:
    """One DataFrame and the expectations it must meet; `show` names the columns that identify a row."""

    name: str
    frame: pd.DataFrame
    expectations: list[Any]
    show: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    """What one expectation found."""

    validation: str
    expectation: str
    column: str | None
    success: bool
    expected: dict[str, Any]
    observed: Any
    unexpected_count: int | None
    offending_rows: list[dict[str, Any]]
    error: str | None = None


@dataclass
class ContractResult:
    contract: str
    asset: str
    outcomes: list[Outcome]
    docs_url: str | None = None

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success]


def rounded(value: Any, digits: int = 4) -> Any:
    """Floats rounded, recursively, for people to read."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, list | tuple):
        return [rounded(v, digits) for v in value]
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    return value


def _short(value: Any, limit: int = 8) -> Any:
    if isinstance(value, list | tuple | set) and len(value) > limit:
        items = list(value)
        return [*items[:limit], f"... {len(items) - limit} more"]
    return value


def _gx_context(project_dir: Path | None):
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    if project_dir is None:
        context = gx.get_context(mode="ephemeral")
    else:
        project_dir.mkdir(parents=True, exist_ok=True)
        context = gx.get_context(mode="file", project_root_dir=str(project_dir))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _lock(project_dir: Path | None):
    """GX keeps its configuration in shared files: one writer at a time across processes."""
    if project_dir is None:
        return contextlib.nullcontext()
    from filelock import FileLock

    project_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(project_dir / ".maskops.lock"), timeout=600)


def run_contract(contract: str, asset: str, validations: list[Validation], project_dir: Path | None = None) -> ContractResult:
    """Validate every DataFrame; with `project_dir`, results also go to GX Data Docs there."""
    import great_expectations as gx
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    outcomes: list[Outcome] = []
    rendered: list = []  # validation results and suites whose Data Docs pages this call renders
    with _lock(project_dir):
        context = _gx_context(project_dir)
        try:
            source = context.data_sources.get("maskops")
        except (KeyError, ValueError):
            source = context.data_sources.add_pandas("maskops")
        for validation in validations:
            name = slug(f"{asset}.{contract}.{validation.name}")
            try:
                data_asset = source.get_asset(name)
            except LookupError:
                data_asset = source.add_dataframe_asset(name)
            try:
                batch = data_asset.get_batch_definition("whole")
            except KeyError:
                batch = data_asset.add_batch_definition_whole_dataframe("whole")
            suite = context.suites.add_or_update(gx.ExpectationSuite(name=name, expectations=[e.copy() for e in validation.expectations]))
            definition = context.validation_definitions.add_or_update(gx.ValidationDefinition(name=name, data=batch, suite=suite))
            checkpoint = context.checkpoints.add_or_update(
                gx.Checkpoint(name=name, validation_definitions=[definition], actions=[], result_format={"result_format": "COMPLETE"})
            )
            run = checkpoint.run(batch_parameters={"dataframe": validation.frame})
            rendered += [*run.run_results, ExpectationSuiteIdentifier(name=suite.name)]
            for result in next(iter(run.run_results.values())).results:
                outcomes.append(_outcome(validation, result))
        if project_dir is not None:  # the pages of this contract's results and the index, once (not once per validation)
            context.build_data_docs(resource_identifiers=rendered)
        docs = context.get_docs_sites_urls() if project_dir is not None else []
    return ContractResult(contract, asset, outcomes, docs[0]["site_url"] if docs else None)


def _outcome(validation: Validation, result) -> Outcome:
    config = result.expectation_config
    kwargs = dict(config.kwargs)
    column = kwargs.get("column") or kwargs.get("column_A")
    details = result.result or {}
    indices = details.get("unexpected_index_list") or []
    rows: list[dict[str, Any]] = []
    if indices and not result.success:
        wanted = [
            c
            for c in dict.fromkeys([*validation.show, *(k for k in (column, kwargs.get("column_B")) if k)])
            if c in validation.frame.columns
        ]
        sample = validation.frame.loc[[i for i in indices[:OFFENDING_ROWS] if i in validation.frame.index], wanted]
        rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in sample.to_dict("records")]
    error = None
    info = getattr(result, "exception_info", None) or {}
    if isinstance(info, dict) and info.get("raised_exception"):
        error = str(info.get("exception_message"))[:300]
    observed = details.get("observed_value")
    return Outcome(
        validation=validation.name,
        expectation=config.type,
        column=column,
        success=bool(result.success),
        expected={k: _short(v) for k, v in kwargs.items() if k not in _SKIP_KWARGS and v is not None},
        observed=observed.item() if hasattr(observed, "item") else _short(observed),
        unexpected_count=details.get("unexpected_count"),
        offending_rows=rows,
        error=error,
    )
