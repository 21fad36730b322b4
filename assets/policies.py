"""How assets are scheduled and stored: the image-models pool, declarative automation, and the
one decorator every derived stage uses."""

from collections.abc import Iterable

import dagster as dg

from maskops.settings import Settings

# Steps running image models use every core; the instance runs one of them at a time
# (the pool limit lives in dagster.yaml, written by resources.instance).
IMAGE_MODELS_POOL = "image-models"

# Re-materialize when an upstream asset changed, but never past a failed blocking check:
# eager() alone does not wait for checks.
DOWNSTREAM = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()

# The sources (dataset folder, label files) are looked at on this cron while automation is on (every 5 minutes
# by default: each look is a run that loads the code location); a new data version sets everything downstream going.
OBSERVE = dg.AutomationCondition.cron_tick_passed(Settings.from_env().observe_cron, cron_timezone="UTC")


def stage(
    *,
    group: str,
    code_version: str,
    kinds: Iterable[str],
    io_manager_key: str = "manifest_io_manager",
    image_models: bool = False,
    **spec,
):
    """`dg.asset` with maskops' defaults: stored by `io_manager_key`, automated downstream of passed blocking
    checks, and in the image-models pool when it runs image models."""
    return dg.asset(
        group_name=group,
        code_version=code_version,
        kinds=set(kinds),
        io_manager_key=io_manager_key,
        automation_condition=DOWNSTREAM,
        pool=IMAGE_MODELS_POOL if image_models else None,
        **spec,
    )
