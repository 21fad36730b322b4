"""The code location loads, and its asset graph is what we say it is."""

from __future__ import annotations

import dagster as dg

from assets.definitions import defs


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)


def test_asset_keys_and_specs_snapshot():
    graph = defs.resolve_asset_graph()
    specs = {key.to_user_string(): graph.get(key) for key in graph.get_all_asset_keys()}
    assert sorted(specs) == [
        "cleaned_dataset", "cropped/cleaned", "cropped/eval", "cropped/generated", "cropped/raw", "cropped/relabeled",
        "eval_dataset", "generated_dataset", "profile_split", "raw_dataset", "relabeled_dataset",
    ]  # fmt: skip
    for key, node in specs.items():
        assert node.group_name == ("cropped" if key.startswith("cropped/") else "datasets")
        assert node.code_version is not None
        assert "parquet" in node.kinds
    parents = {key: sorted(k.to_user_string() for k in node.parent_keys) for key, node in specs.items()}
    assert parents["relabeled_dataset"] == ["raw_dataset"]
    assert parents["profile_split"] == ["relabeled_dataset"]
    assert parents["cleaned_dataset"] == ["relabeled_dataset"]
    assert parents["generated_dataset"] == ["cleaned_dataset", "profile_split"]
    assert parents["cropped/generated"] == ["generated_dataset"] and parents["cropped/eval"] == ["eval_dataset"]
    assert defs.resolve_job_def("maskops_pipeline") is not None
