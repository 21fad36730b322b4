"""Retraining without a person at the keyboard.

- `new_data_sensor` polls the dataset root and the label files. When the dataset's files differ
  from the ones `raw_dataset` was last read from, or a label file differs from the version its
  asset last recorded, it requests a run of that input and everything downstream of it (crops
  are reused from the image store, so only new images are processed; the models retrain, the
  ensemble registers a new version and promotion decides whether it becomes the champion).
  Its state is the assets' own history, not a cursor: a run that failed is requested again
  only when the files change again, and nothing is requested while its last run is in progress.
- `weekly_challenger` (Mondays 03:00) retrains the four models with a new seed (the ISO year
  and week) on the current data: the ensemble of the week is registered and takes the
  `champion` alias only if it scores at least as well on the same validation people;
  otherwise it stays `challenger`.

Both start stopped: switch them on in the UI (Automation) or with `dagster sensor start` /
`dagster schedule start`; they need the Dagster daemon (`maskops ui` runs one).
"""

from __future__ import annotations

import dagster as dg

from assets.models import VARIANTS
from assets.raw import SOURCE_FINGERPRINT
from maskops.layout import source_fingerprint
from resources import CompetitionDataset, LabelFiles
from resources.labels import file_version

DATASET_KEYS = (dg.AssetKey("raw_dataset"), dg.AssetKey("eval_dataset"))  # read in one scan
LABEL_FILES = {dg.AssetKey("label_corrections"): "corrections", dg.AssetKey("label_exclusions"): "exclusions"}
TRIGGER_TAG = "maskops/trigger"
ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]

challenger_job = dg.define_asset_job(
    "train_challenger",
    selection=dg.AssetSelection.assets(*(["model", v] for v in VARIANTS), "ensemble", "submission"),
    description="Retrain the four variant models and the ensemble on the current data (a new seed from the schedule); "
    "promotion decides champion or challenger.",
    executor_def=dg.in_process_executor,
)


def _latest(instance: dg.DagsterInstance, key: dg.AssetKey) -> dg.AssetMaterialization | None:
    event = instance.get_latest_materialization_event(key)
    return event.asset_materialization if event else None


def changed_inputs(instance: dg.DagsterInstance, dataset_root: str, labels: LabelFiles) -> dict[dg.AssetKey, tuple[str, str]]:
    """The input assets whose files differ from what they last recorded: key -> (why, the files' version now)."""
    changed: dict[dg.AssetKey, tuple[str, str]] = {}
    raw = _latest(instance, DATASET_KEYS[0])
    recorded = raw.metadata.get(SOURCE_FINGERPRINT) if raw else None
    current = source_fingerprint(dataset_root)
    if recorded is None or recorded.value != current:
        reason = "never read" if raw is None else f"dataset files changed ({getattr(recorded, 'value', '?')} -> {current})"
        changed |= {key: (reason, current) for key in DATASET_KEYS}
    for key, attribute in LABEL_FILES.items():
        path = getattr(labels, attribute)
        materialization = _latest(instance, key)
        version = materialization.tags.get("dagster/data_version") if materialization and materialization.tags else None
        if version != (now := file_version(path)):
            changed[key] = ("never read" if materialization is None else f"{path.name} changed", now)
    return changed


@dg.sensor(
    name="new_data_sensor",
    job_name="maskops_pipeline",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="New or changed dataset files or label files: re-materialize them and everything downstream (models, ensemble, submission).",
)
def new_data_sensor(context: dg.SensorEvaluationContext, dataset: CompetitionDataset, labels: LabelFiles):
    running = context.instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": "new_data_sensor"}, statuses=ACTIVE), limit=1)
    if running:  # it is reading the files now; what it misses is seen on the first tick after it
        return dg.SkipReason(f"run {running[0].run_id} of this sensor is still in progress")
    changed = changed_inputs(context.instance, dataset.root, labels)
    if not changed:
        return dg.SkipReason("the dataset and the label files are as the assets last read them")
    keys = sorted(changed, key=lambda k: k.to_user_string())
    selection = dg.AssetSelection.assets(*keys).downstream().resolve(context.repository_def.asset_graph)
    grouped: dict[str, list[str]] = {}
    for key in keys:
        grouped.setdefault(changed[key][0], []).append(key.to_user_string())
    why = "; ".join(f"{', '.join(names)}: {reason}" for reason, names in grouped.items())
    context.log.info(f"requesting {len(selection)} assets: {why}")
    return dg.RunRequest(
        run_key="+".join(f"{k.to_user_string()}:{changed[k][1]}" for k in keys),  # the same files: launched once
        asset_selection=sorted(selection, key=lambda k: k.to_user_string()),
        tags={TRIGGER_TAG: why[:200]},
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
        run_config={"ops": {f"model__{v}": {"config": {"seed": seed}} for v in VARIANTS}},
        tags={TRIGGER_TAG: f"weekly challenger, seed {seed}"},
    )
