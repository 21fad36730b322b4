"""The maskops code location: assembles sources, assets, checks, jobs, automation and resources; holds no logic."""

import dagster as dg

from assets.automation import automation_sensor, challenger_job, stuck_runs, weekly_challenger
from assets.checks import checks
from assets.cropped import cropped_assets
from assets.datasets import cleaned_dataset, generated_dataset, profile_split, relabeled_dataset
from assets.ensemble import ensemble, ensemble_check, submission
from assets.label_issues import label_issues
from assets.labels import label_corrections, label_exclusions
from assets.models import model_assets, model_checks
from assets.raw import competition_dataset
from assets.sources import EVERYTHING, sources
from maskops.settings import Settings
from resources import build_resources
from resources.execution import default_executor, job_executor

settings = Settings.from_env()

executor, execution_config = job_executor(settings)
pipeline_job = dg.define_asset_job(
    "maskops_pipeline",
    # the sources are observed in the same run, so the automation sees the versions this run read
    selection=EVERYTHING,
    description="Observe the sources and materialize every asset, from the raw dataset to the submission: in one process "
    "locally (the image models use every core anyway), on the Celery workers in production.",
    config={"loggers": {"console": {"config": {"log_level": "INFO"}}}, **execution_config},
    executor_def=executor,
)

# The data stages, raw files to crops (tests and benchmarks materialize exactly these).
data_assets = [
    competition_dataset,
    label_corrections,
    label_exclusions,
    relabeled_dataset,
    profile_split,
    cleaned_dataset,
    generated_dataset,
    *cropped_assets,
]

defs = dg.Definitions(
    assets=[sources, *data_assets, *model_assets, ensemble, submission, label_issues],
    asset_checks=[*checks, *model_checks, ensemble_check],
    jobs=[pipeline_job, challenger_job],
    # stuck_runs reads process ids: it can judge only runs on its own machine, i.e. the local profile's
    sensors=[automation_sensor] if settings.production else [automation_sensor, stuck_runs],
    schedules=[weekly_challenger],
    resources=build_resources(settings),
    executor=default_executor(settings),
)
