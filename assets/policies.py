"""How assets are scheduled and stored: the image-models pool, declarative automation, and the
one decorator every derived stage uses."""

import json
from collections.abc import Iterable

import dagster as dg

from assets.catalog import catalog
from maskops.settings import Settings
from resources.instance import GPU_POOL, IMAGE_MODELS_POOL, step_pool

# Training steps go to the `gpu` pool and Celery queue, image-model steps (background removal, face detection,
# generation, ensemble inference) to `image_models` / `images`; everything else to Celery's default `dagster` queue.
# Locally both kinds share the pool `cores` (resources.instance.step_pool). Pool limits: dagster.yaml and
# `maskops init-instance` (resources.instance).
QUEUES = {GPU_POOL: "gpu", IMAGE_MODELS_POOL: "images"}
CELERY_QUEUE_TAG = "dagster-celery/queue"
K8S_CONFIG_TAG = "dagster-k8s/config"
# On Kubernetes (k8s_job_executor) a training step's pod asks for one GPU.
GPU_POD = {"container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}}}

# Re-materialize when an upstream asset changed, but never past a failed blocking check (eager() alone does not wait
# for checks). Dagster's all_deps_blocking_checks_passed() counts a check as coming only once the check itself has been
# evaluated as requested, which depends on the order it evaluates a check and its asset's children in; a dep requested
# in the same tick counts here too — its blocking checks run in the same run, and one that fails stops what is below.
CHECKED_OR_COMING = dg.AutomationCondition.will_be_requested() | dg.AutomationCondition.all_checks_match(
    dg.AutomationCondition.check_passed() | dg.AutomationCondition.will_be_requested(), blocking_only=True
)
DOWNSTREAM = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_match(CHECKED_OR_COMING).with_label(
    "all_deps_blocking_checks_passed_or_coming"
)


def with_its_asset(asset: str) -> dg.AutomationCondition:
    """A blocking check's automation: requested in the tick its asset is, so the run lists it explicitly. Before this and
    CHECKED_OR_COMING, the check was added to the run only afterwards, the gate did not count it as coming, and after
    a failed run (whose planned checks never ran) what depends on the asset waited for a later tick while its other
    inputs went ahead: changes flowed in several waves, some models trained twice, once on stale crops."""
    return dg.AutomationCondition.any_deps_match(dg.AutomationCondition.will_be_requested()).allow(dg.AssetSelection.assets(asset))


# The sources (dataset folder, label files) are looked at on this cron while automation is on (every 5 minutes
# by default: each look is a run that loads the code location); a new data version sets everything downstream going.
SETTINGS = Settings.from_env()
OBSERVE = dg.AutomationCondition.cron_tick_passed(SETTINGS.observe_cron, cron_timezone="UTC")


def stage(
    *,
    group: str,
    code_version: str,
    kinds: Iterable[str],
    io_manager_key: str = "manifest_io_manager",
    pool: str | None = None,
    tags: dict[str, str] | None = None,
    **spec,
):
    """`dg.asset` with maskops' defaults: the catalog's group, owners and tags (assets.catalog), stored by
    `io_manager_key`, automated downstream of passed blocking checks, and — for `pool` gpu or image_models — limited by
    that pool (locally: by `cores`, resources.instance.step_pool) and sent to its Celery queue."""
    return dg.asset(
        **catalog(group, **(tags or {})),
        code_version=code_version,
        kinds=set(kinds),
        io_manager_key=io_manager_key,
        automation_condition=DOWNSTREAM,
        pool=step_pool(pool, SETTINGS),
        op_tags=step_tags(pool),
        **spec,
    )


def step_tags(pool: str | None) -> dict[str, str]:
    """The op tags that route a step: its Celery queue and, for training, a GPU on Kubernetes."""
    tags = {CELERY_QUEUE_TAG: QUEUES[pool]} if pool else {}
    if pool == GPU_POOL:
        tags[K8S_CONFIG_TAG] = json.dumps(GPU_POD)
    return tags
