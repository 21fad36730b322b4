"""The code location loads, and its asset graph is what we say it is."""

from __future__ import annotations

import dagster as dg

from assets.definitions import defs


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()
    assert {s.name: s.default_status for s in repository.schedule_defs} == {"weekly_challenger": dg.DefaultScheduleStatus.STOPPED}
    sensors = {s.name: s.default_status for s in repository.sensor_defs}
    assert sensors["new_data_sensor"] == dg.DefaultSensorStatus.STOPPED  # nothing runs by itself until switched on
    assert {j.name for j in repository.get_all_jobs()} >= {"maskops_pipeline", "train_challenger"}


def test_asset_keys_and_specs_snapshot():
    graph = defs.resolve_asset_graph()
    specs = {key.to_user_string(): graph.get(key) for key in graph.get_all_asset_keys()}
    assert sorted(specs) == [
        "cleaned_dataset", "cropped/cleaned", "cropped/eval", "cropped/generated", "cropped/raw", "cropped/relabeled",
        "ensemble", "eval_dataset", "generated_dataset", "label_corrections", "label_exclusions", "label_issues", "model/cleaned", "model/generated",
        "model/raw", "model/relabeled", "profile_split", "raw_dataset", "relabeled_dataset", "submission",
    ]  # fmt: skip
    for key, node in specs.items():
        group = {"cropped/": "cropped", "label_": "labels", "model/": "models", "ensemble": "ensemble", "submission": "ensemble"}
        assert node.group_name == next((g for prefix, g in group.items() if key.startswith(prefix)), "datasets")
        assert node.code_version is not None
        kind = "mlflow" if key.startswith(("model/", "ensemble")) else "csv" if key == "submission" else "parquet"
        assert kind in node.kinds, key
    parents = {key: sorted(k.to_user_string() for k in node.parent_keys) for key, node in specs.items()}
    assert parents["relabeled_dataset"] == ["label_corrections", "raw_dataset"]
    assert parents["profile_split"] == ["relabeled_dataset"]
    assert parents["cleaned_dataset"] == ["label_exclusions", "relabeled_dataset"]
    assert parents["generated_dataset"] == ["cleaned_dataset", "profile_split"]
    assert parents["cropped/generated"] == ["generated_dataset"] and parents["cropped/eval"] == ["eval_dataset"]
    assert parents["model/raw"] == ["cropped/raw", "cropped/relabeled", "profile_split"]  # validated on relabeled crops
    assert parents["model/relabeled"] == ["cropped/relabeled", "profile_split"]
    assert parents["ensemble"] == ["cropped/relabeled", "model/cleaned", "model/generated", "model/raw", "model/relabeled", "profile_split"]
    assert parents["submission"] == ["cropped/eval", "ensemble", "eval_dataset"]
    assert parents["label_issues"] == ["cropped/relabeled", "profile_split"]  # the current labels, judged out of fold
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
        **{f"model/{v}:model_quality": True for v in ("raw", "relabeled", "cleaned", "generated")},
        "submission:submission_contract": True,
    }


def test_downstream_automation_respects_blocking_checks():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.parent_keys:
            assert "all_deps_blocking_checks_passed" in str(node.automation_condition), key
