"""The code location loads, and its asset graph is what we say it is."""

from __future__ import annotations

import dagster as dg

from assets.definitions import defs


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)


def test_asset_keys_and_specs_snapshot():
    graph = defs.resolve_asset_graph()
    specs = {key.to_user_string(): graph.get(key) for key in graph.get_all_asset_keys()}
    assert sorted(specs) == ["eval_dataset", "raw_dataset"]
    for node in specs.values():
        assert node.group_name == "datasets"
        assert node.code_version is not None
        assert "parquet" in node.kinds
    assert defs.resolve_job_def("maskops_pipeline") is not None
