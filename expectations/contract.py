"""Running a data contract with Great Expectations 1.x and reading its outcome.

A contract is a list of validations: a DataFrame plus the expectations it must meet. Derived
columns (a class id recomputed from its parts, images per profile, ...) turn rules GX has no
expectation for into plain column expectations, so every failure still points at rows.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from maskops.files import slug
from maskops.labels import AGE_GROUP_WORDS, CLASS_NAMES, Gender, MaskState

# label codes in human words, for every column that holds one
LABEL_NAMES: dict[str, dict[int, str]] = {
    "mask": {int(m): m.name.lower() for m in MaskState},
    "gender": {int(g): g.name.lower() for g in Gender},
    "age_group": {int(a): name for a, name in AGE_GROUP_WORDS.items()},
    "class_id": dict(enumerate(CLASS_NAMES)),
}
for _derived in ("age_group_from_age", "rarest_age_group"):
    LABEL_NAMES[_derived] = LABEL_NAMES["age_group"]
LABEL_NAMES["class_id_from_parts"] = LABEL_NAMES["class_id"]
LABEL_NAMES["raw_mask"], LABEL_NAMES["raw_gender"] = LABEL_NAMES["mask"], LABEL_NAMES["gender"]  # before corrections

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
    row: dict[str, Any] = field(default_factory=dict)  # the validated row itself, when the table has one row (a summary)


@dataclass
class ContractResult:
    contract: str
    asset: str
    outcomes: list[Outcome]
    docs_url: str | None = None
    verdict: str = ""  # the outcome in one line (describe(), or a contract's own wording); set by whoever runs it

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
        _drop_empty_config_variables(context)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _drop_empty_config_variables(context) -> None:
    """A file project names `uncommitted/config_variables.yml`, and GX parses that YAML again on every read of a context
    variable: about 70 times a contract, a quarter of a contract's time on the demo's raw dataset. maskops keeps no
    variables there: GX's template holds only comments and an `instance_id` for its usage statistics, which maskops
    turns off (GX_ANALYTICS_ENABLED=false). While the file holds nothing else the project stops naming it, and the next
    context reads no such file. A file with a variable of someone's own is kept and read as before."""
    from great_expectations.core.yaml_handler import YAMLHandler

    path = context.variables.config_variables_file_path
    if not path or "$" in path:  # none named, or a path substituted from the environment: leave it to GX
        return
    try:
        variables = YAMLHandler().load((Path(context.root_directory) / path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        variables = {}
    except Exception:  # unreadable or not YAML: GX will say so itself, as before
        return
    if not isinstance(variables, dict) or set(variables) - {"instance_id"}:
        return
    context.variables.config_variables_file_path = None
    context.variables.save()


def _lock(project_dir: Path | None):
    """GX keeps its configuration in shared files: one writer at a time across processes."""
    if project_dir is None:
        return contextlib.nullcontext()
    from filelock import FileLock

    project_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(project_dir / ".maskops.lock"), timeout=600)


def run_contract(contract: str, asset: str, validations: list[Validation], project_dir: Path | None = None) -> ContractResult:
    """Validate every DataFrame; with `project_dir`, the suites and results are stored in that GX project, whose Data
    Docs `build_data_docs` renders when someone looks (`maskops docs`) — rendering them here cost 0.4 s per call,
    5 s of a 12-person demo run (bench/orchestration.py)."""
    import great_expectations as gx

    outcomes: list[Outcome] = []
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
            for result in next(iter(run.run_results.values())).results:
                outcomes.append(_outcome(validation, result))
        docs = context.get_docs_sites_urls(only_if_exists=False) if project_dir is not None else []
    result = ContractResult(contract, asset, outcomes, docs[0]["site_url"] if docs else None)
    result.verdict = describe(result)
    return result


DATA_DOCS_SITE = Path("gx", "uncommitted", "data_docs", "local_site")  # GX's local site, under a file project


def build_data_docs(project_dir: Path) -> int:
    """Render the Data Docs pages the GX project at `project_dir` lacks — every stored validation result without its
    page, every suite changed since its page — and then the index; returns the pages rendered (0: up to date, nothing
    done). Cheap when up to date (file times only), so `maskops docs` calls it before serving a page. A result GX cannot
    render (a half-written file, say) is skipped and named in a warning; the others and the index are rendered."""
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier, ValidationResultIdentifier

    root = project_dir / "gx"
    if not root.is_dir():  # no contract has run here yet: nothing to render, and no project to create
        return 0
    site = project_dir / DATA_DOCS_SITE
    stale = _stale_pages(root / "uncommitted" / "validations", site / "validations", changed=False)
    suites = _stale_pages(root / "expectations", site / "expectations", changed=True)
    if not stale and not suites and (site / "index.html").exists():
        return 0
    with _lock(project_dir):
        context = _gx_context(project_dir)
        identifiers = [ValidationResultIdentifier.from_tuple(parts) for parts in stale]
        identifiers += [ExpectationSuiteIdentifier(name=".".join(parts)) for parts in suites]
        if not identifiers:  # only the index missing
            context.build_data_docs()
            return 0
        try:
            context.build_data_docs(resource_identifiers=identifiers)
        except Exception:  # one at a time, so one broken result does not cost the others their pages
            for identifier in identifiers:
                try:
                    context.build_data_docs(resource_identifiers=[identifier])
                except Exception as exc:
                    warnings.warn(f"GX Data Docs: cannot render {identifier} ({type(exc).__name__}: {exc})", stacklevel=2)
    return len(identifiers)


def _stale_pages(stored: Path, pages: Path, changed: bool) -> list[tuple[str, ...]]:
    """Keys (path parts) of the stored JSON files whose HTML page is missing — or, with `changed`, older than them."""
    if not stored.is_dir():
        return []
    keys = []
    for item in stored.rglob("*.json"):
        relative = item.relative_to(stored)  # names hold dots (batch ids): only the .json suffix is swapped
        page = pages / relative.with_suffix(".html")
        if not page.exists() or (changed and page.stat().st_mtime < item.stat().st_mtime):
            keys.append(relative.with_suffix("").parts)
    return keys


def human(column: str, value: Any) -> Any:
    """A label code in words (age group 2 -> '>=60', mask 1 -> 'incorrect'); other values, and codes out of the
    label's domain, as they are."""
    value = value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else value  # numpy -> Python
    names = LABEL_NAMES.get(column)
    if names is None or isinstance(value, bool):
        return value
    try:
        return names.get(int(value), value) if float(value) == int(value) else value
    except (TypeError, ValueError, OverflowError):
        return value


def human_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: human(k, v) for k, v in row.items()}


def _observed(validation: Validation, column: str | None, expectation: str, details: dict, success: bool) -> Any:
    """What the expectation saw: GX's observed value, else (expectations on each row) the value of a one-row table, the
    column's range for a range rule, the values that broke the rule, or the values seen."""
    observed = details.get("observed_value")
    if observed is not None:
        return observed.item() if hasattr(observed, "item") else _short(observed)
    if column is None or column not in validation.frame.columns or validation.frame.empty:
        return None
    values = validation.frame[column].dropna()
    if len(validation.frame) == 1:
        return human_row({column: validation.frame[column].iloc[0]})[column]
    if "between" in expectation and pd.api.types.is_numeric_dtype(values) and not values.empty:
        return {"min": values.min().item(), "max": values.max().item()}
    if not success:
        broke: list[Any] = []  # values may be lists (a pair of columns): no set
        for value in details.get("partial_unexpected_list") or []:
            if human(column, value) not in broke:
                broke.append(human(column, value))
        return _short(broke)
    distinct = [human_row({column: v})[column] for v in values.drop_duplicates()[:9]]
    return distinct if len(distinct) <= 8 else f"{values.nunique()} distinct values"


def _outcome(validation: Validation, result) -> Outcome:
    config = result.expectation_config
    kwargs = dict(config.kwargs)
    column = kwargs.get("column") or kwargs.get("column_A")
    details = result.result or {}
    indices = details.get("unexpected_index_list") or []
    wanted = [
        c for c in dict.fromkeys([*validation.show, *(k for k in (column, kwargs.get("column_B")) if k)]) if c in validation.frame.columns
    ]
    rows: list[dict[str, Any]] = []
    if indices and not result.success:
        sample = validation.frame.loc[[i for i in indices[:OFFENDING_ROWS] if i in validation.frame.index], wanted]
        rows = [human_row(r) for r in sample.to_dict("records")]
    error = None
    info = getattr(result, "exception_info", None) or {}
    if isinstance(info, dict) and info.get("raised_exception"):
        error = str(info.get("exception_message"))[:300]
    return Outcome(
        validation=validation.name,
        expectation=config.type,
        column=column,
        success=bool(result.success),
        expected={k: _short(v) for k, v in kwargs.items() if k not in _SKIP_KWARGS and v is not None},
        observed=_observed(validation, column, config.type, details, bool(result.success)),
        unexpected_count=details.get("unexpected_count"),
        offending_rows=rows,
        error=error,
        row=human_row(validation.frame[wanted].iloc[0].to_dict()) if len(validation.frame) == 1 else {},
    )


# -- one line a person reads: what was checked, what was seen, against which bound --------------------------------------


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _rule(o: Outcome) -> str:
    """The rule an expectation states, in a few words."""
    e, kind = o.expected, o.expectation.removeprefix("expect_")
    if "between" in kind:
        low, high = e.get("min_value"), e.get("max_value")
        return f"in [{_number(low)}, {_number(high)}]" if low is not None and high is not None else (
            f">= {_number(low)}" if low is not None else f"<= {_number(high)}")  # fmt: skip
    if "value_set" in e:
        return f"in {[human(o.column or '', v) for v in e['value_set']]}"
    if "threshold" in e:
        return f"< {_number(e['threshold'])}"
    if "column_B" in e:
        return f"= {e['column_B']}"
    if "value" in e:
        return f"= {_number(e['value'])}"
    return kind.replace("_", " ")


def phrase(o: Outcome) -> str:
    """One outcome in a line, e.g. `profile_images in [7]: 6 rows break it (e.g. profile_id=...)`."""
    subject = o.column or o.expectation.removeprefix("expect_").split("_to_")[0].replace("_", " ")
    if o.error:
        return f"{subject}: {o.error[:120]}"
    if o.unexpected_count:  # a rule on every row
        example = ", ".join(f"{k}={v}" for k, v in list((o.offending_rows or [{}])[0].items())[:3])
        rows = f"{o.unexpected_count} row{'s' if o.unexpected_count != 1 else ''}"
        return f"{subject} {_rule(o)}: {rows} break{'s' if o.unexpected_count == 1 else ''} it" + (f" (e.g. {example})" if example else "")
    seen = ", ".join(f"{k} {_number(v)}" for k, v in o.observed.items()) if isinstance(o.observed, dict) else _number(o.observed)
    return f"{subject} {_rule(o)}: observed {seen}"


def describe(result: ContractResult, limit: int = 300) -> str:
    """The verdict in one line: how many expectations held and, when some did not, what each saw."""
    total, failed = len(result.outcomes), result.failed
    if not failed:
        return f"all {total} expectations met"
    line = f"{len(failed)} of {total} failed: " + "; ".join(phrase(o) for o in failed)
    return line if len(line) <= limit else line[: limit - 3] + "..."
