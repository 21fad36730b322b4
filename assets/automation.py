"""Retraining without a person at the keyboard: one declarative system, plus a weekly challenger.

- `retraining_automation` evaluates the assets' automation conditions. The sources (dataset
  folder, label files) are observed every 5 minutes (MASKOPS_OBSERVE_CRON); when one has a new data version (new photos,
  an edited corrections.csv), everything downstream of it is requested, in one run where Dagster
  can — but never past a failed blocking check, never while it is already running, and a failed
  run is not retried until its inputs change again. Crops are reused from the image store, so only
  new images are processed; the models retrain and promotion decides the champion.
- `weekly_challenger` (Mondays 03:00 UTC) retrains the four models with a new seed (the ISO year
  and week) on the current data; the new ensemble takes `champion` only if it scores at least as
  well on the same validation people, otherwise it stays `challenger`.

Both start stopped: switch them on in the UI (Automation) or with `dagster sensor start` /
`dagster schedule start`; they need the Dagster daemon (`maskops ui` runs one).
"""

import dagster as dg

from assets.models import VARIANTS
from assets.sources import EVERYTHING
from maskops.settings import Settings
from maskops.variants import model_name
from resources.execution import job_executor
from resources.instance import TRIGGER_TAG
from resources.runs import pool_waits, sweep

automation_sensor = dg.AutomationConditionSensorDefinition(
    "retraining_automation",
    target=EVERYTHING,
    default_status=dg.DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=60,
    emit_backfills=False,
    run_tags={TRIGGER_TAG: "declarative automation"},
    description="Observes the dataset folder and the label files every 5 minutes (MASKOPS_OBSERVE_CRON); when one changed, "
    "re-materializes it and "
    "everything downstream (crops of new images only, models, ensemble, submission), never past a failed blocking check.",
)

executor, execution_config = job_executor(Settings.from_env())
challenger_job = dg.define_asset_job(
    "train_challenger",
    selection=dg.AssetSelection.assets(*(model_name(v) for v in VARIANTS), "ensemble", "submission"),
    description="Retrain the four variant models and the ensemble on the current data (a new seed from the schedule); "
    "promotion decides champion or challenger.",
    config=execution_config or None,
    executor_def=executor,
)


@dg.schedule(
    name="weekly_challenger",
    job=challenger_job,
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Mondays 03:00 UTC: retrain the models with the week's seed; the new ensemble is promoted only if it is at least as good.",
)
def weekly_challenger(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    when = context.scheduled_execution_time
    seed = int(when.strftime("%G%V"))  # e.g. 202648: a new seed each week, the same one if the tick is retried
    return dg.RunRequest(
        run_key=f"challenger-{seed}",
        run_config={**execution_config, "ops": {model_name(v): {"config": {"seed": seed}} for v in VARIANTS}},
        tags={TRIGGER_TAG: f"weekly challenger, seed {seed}"},
    )


@dg.sensor(
    name="stuck_runs",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Housekeeping, local profile: a run in progress whose processes are all gone (kill -9, a crash) is marked "
    "failed and the pool slots it held are freed, so later runs and the automation do not wait on it for ever; a step "
    "waiting on a pool held by another run is logged as a warning. Starts nothing.",
)
def stuck_runs(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    swept = sweep(context.instance)
    for line in swept:
        context.log.warning(line)
    for wait in pool_waits(context.instance):
        if wait.held_by_other_runs:
            context.log.warning(wait.describe())
    return dg.SkipReason("; ".join(swept) or "no dead run holds a slot")
