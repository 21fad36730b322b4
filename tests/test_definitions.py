"""The code location loads, and its asset graph is what we say it is."""

from __future__ import annotations

import ast
from pathlib import Path

import dagster as dg

from assets.definitions import defs
from assets.policies import DOWNSTREAM, OBSERVE
from maskops.settings import Settings
from resources.instance import CORES_POOL, GPU_POOL, IMAGE_MODELS_POOL, dagster_yaml, step_pool

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("corrections_file", "dataset_folder", "exclusions_file")


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()
    assert {s.name: s.default_status for s in repository.schedule_defs} == {"weekly_challenger": dg.DefaultScheduleStatus.STOPPED}
    # one automation system, switched off until someone switches it on; beside it only the housekeeping of dead runs
    assert {s.name: s.default_status for s in repository.sensor_defs} == {
        "retraining_automation": dg.DefaultSensorStatus.STOPPED,
        "stuck_runs": dg.DefaultSensorStatus.RUNNING,
    }
    assert {j.name for j in repository.get_all_jobs()} >= {"maskops_pipeline", "train_challenger"}


def test_locally_every_step_that_uses_every_core_waits_for_the_one_cores_slot():
    """Training and image-model steps share the local `cores` pool (limit 1 in the local dagster.yaml), so a crop step
    never runs beside a training in the UI's parallel runs, nor two runs' trainings at once (bench/concurrency.py: two
    such steps together kept 0.40-0.72 of their speed); production keeps their own pools, routed to their own workers."""
    pools = {
        key.to_user_string(): a.op.pool for a in defs.assets if isinstance(a, dg.AssetsDefinition) and a.is_executable for key in a.keys
    }
    heavy = {k for k in pools if k.endswith(("_crops", "_model")) or k in ("generated_dataset", "label_issues", "ensemble", "submission")}
    assert {k: pools[k] for k in heavy} == dict.fromkeys(heavy, CORES_POOL) and len(heavy) == 14
    assert not {k: p for k, p in pools.items() if k not in heavy and p}
    assert "default_limit: 1" in dagster_yaml(Settings.from_env({}))
    production = Settings.from_env({"MASKOPS_PROFILE": "production"})
    assert [step_pool(p, production) for p in (GPU_POOL, IMAGE_MODELS_POOL, None)] == [GPU_POOL, IMAGE_MODELS_POOL, None]


def test_asset_keys_and_specs_snapshot():
    graph = defs.resolve_asset_graph()
    specs = {key.to_user_string(): graph.get(key) for key in graph.get_all_asset_keys()}
    assert sorted(specs) == sorted([
        "cleaned_dataset", "cleaned_crops", "eval_crops", "generated_crops", "raw_crops", "relabeled_crops",
        "ensemble", "eval_dataset", "generated_dataset", "label_corrections", "label_exclusions", "label_issues", "cleaned_model", "generated_model",
        "raw_model", "relabeled_model", "profile_split", "raw_dataset", "relabeled_dataset", "submission", "mask_only_dataset",
        "mask_only_crops", *SOURCES,
    ])  # fmt: skip
    for key, node in specs.items():  # groups follow the flow: inputs, datasets, crops, models, serving, review
        group = {
            "_crops": "crops",
            "label_issues": "review",
            "label_": "inputs",
            "_model": "models",
            "ensemble": "serving",
            "submission": "serving",
        }
        expected = "inputs" if key in SOURCES else next((g for part, g in group.items() if part in key), "datasets")
        assert node.group_name == expected, key
        # a catalog a team can read: every asset says what it is, who owns it, and carries the tags to filter on
        assert node.description and len(node.description) > 30, key
        assert node.owners and all(o.startswith("team:") for o in node.owners), key
        assert {"domain", "stage"} <= set(node.tags) and node.tags["stage"] == expected, key
        if key.endswith(("_crops", "_model")):
            assert node.tags["variant"] == key.rsplit("_", 1)[0], key
        # the weekly challenger retrains models and the ensemble: older than a week warns, two weeks fails
        assert (node.freshness_policy is not None) == key.endswith("_model") or key == "ensemble", key
        if key in SOURCES:
            assert node.is_observable and not node.is_materializable
            continue
        assert node.code_version is not None
        kind = "mlflow" if key.endswith("_model") or key == "ensemble" else "csv" if key == "submission" else "parquet"
        assert kind in node.kinds, key
    parents = {key: sorted(k.to_user_string() for k in node.parent_keys) for key, node in specs.items()}
    assert parents["raw_dataset"] == parents["eval_dataset"] == parents["mask_only_dataset"] == ["dataset_folder"]  # the folder itself
    assert parents["label_corrections"] == ["corrections_file"] and parents["label_exclusions"] == ["exclusions_file"]
    assert parents["relabeled_dataset"] == ["label_corrections", "raw_dataset"]
    assert parents["profile_split"] == ["relabeled_dataset"]
    assert parents["cleaned_dataset"] == ["label_exclusions", "relabeled_dataset"]
    assert parents["generated_dataset"] == ["cleaned_dataset", "profile_split"]
    assert parents["generated_crops"] == ["generated_dataset"] and parents["eval_crops"] == ["eval_dataset"]
    # validated on relabeled crops; the mask-only photos cropped as relabeled_crops were (its recipe) join every model's training
    assert parents["raw_model"] == ["mask_only_crops", "profile_split", "raw_crops", "relabeled_crops"]
    assert parents["relabeled_model"] == ["mask_only_crops", "profile_split", "relabeled_crops"]
    assert parents["mask_only_crops"] == ["mask_only_dataset", "relabeled_crops"]
    assert parents["ensemble"] == ["cleaned_model", "generated_model", "profile_split", "raw_model", "relabeled_crops", "relabeled_model"]
    assert parents["submission"] == ["ensemble", "eval_crops", "eval_dataset"]
    assert parents["label_issues"] == ["profile_split", "relabeled_crops"]  # the current labels, judged out of fold
    assert defs.resolve_job_def("maskops_pipeline") is not None


def test_data_contracts_guard_the_assets():
    graph = defs.resolve_asset_graph()
    found = {key.to_user_string(): graph.get_check_spec(key).blocking for key in graph.asset_check_keys}
    assert found == {
        **{f"{a}:labels_contract": True for a in ("raw_dataset", "relabeled_dataset", "cleaned_dataset", "generated_dataset")},
        **{f"{a}:balance_contract": False for a in ("raw_dataset", "relabeled_dataset", "cleaned_dataset", "generated_dataset")},
        "profile_split:splits_contract": True,
        "generated_dataset:generated_split_contract": True,
        "label_corrections:corrections_contract": True,
        "label_exclusions:exclusions_contract": True,
        **{f"{v}_model:model_quality": True for v in ("raw", "relabeled", "cleaned", "generated")},
        "ensemble:ensemble_earns_its_place": False,
        "submission:submission_contract": True,
    }


def test_sources_are_observed_and_everything_else_waits_for_blocking_checks():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.automation_condition == (OBSERVE if node.is_observable else DOWNSTREAM), key.to_user_string()


def test_asset_bodies_only_orchestrate():
    """Every function of the pipeline's asset modules fits in about 40 lines: evaluation, plots, registration and
    promotion live in the domain and tracking layers, with tests of their own."""
    too_long = []
    for path in sorted((REPO / "assets").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                body = node.body[1:] if ast.get_docstring(node) else node.body
                lines = body[-1].end_lineno - body[0].lineno + 1
                if lines > 40:
                    too_long.append(f"{path.name}:{node.lineno} {node.name} ({lines} lines)")
    assert not too_long
