"""How assets are scheduled: concurrency pools and declarative automation."""

import dagster as dg

# Steps running image models use every core; the instance runs one of them at a time
# (the pool limit lives in dagster.yaml, written by maskops.settings).
IMAGE_MODELS_POOL = "image-models"

# Re-materialize when an upstream asset changed, but never past a failed blocking check:
# eager() alone does not wait for checks.
DOWNSTREAM = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
