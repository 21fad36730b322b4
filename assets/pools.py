"""Concurrency pools (limits live in dagster.yaml, written by maskops.settings)."""

# Steps running image models use every core; the instance runs one of them at a time.
IMAGE_MODELS_POOL = "image-models"
