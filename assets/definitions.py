"""The maskops code location: assembles assets, jobs and resources; holds no logic."""

import dagster as dg

from assets.raw import competition_dataset
from maskops.settings import Settings
from resources import build_resources

settings = Settings.from_env()

pipeline_job = dg.define_asset_job(
    "maskops_pipeline",
    selection=dg.AssetSelection.all(),
    description="Materialize every asset, from the raw dataset to the latest stage.",
    config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
)

defs = dg.Definitions(
    assets=[competition_dataset],
    jobs=[pipeline_job],
    resources=build_resources(settings),
)
