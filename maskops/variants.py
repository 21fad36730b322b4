"""The dataset variants of the original solution, and the names of what is made from each: one name for the Dagster
asset, its MLflow run, its stored files and its row in every comparison table.

Each name is unique by itself (`relabeled_crops`, `relabeled_model`): Dagster's lineage view shows only the last part of
an asset key, so keys such as `cropped/raw` and `model/raw` both read "raw" there.
"""

VARIANTS = ("raw", "relabeled", "cleaned", "generated")


def crops_name(variant: str) -> str:
    """The face crops of a dataset variant (or of the evaluation set, variant 'eval')."""
    return f"{variant}_crops"


def model_name(variant: str) -> str:
    """The model trained on a dataset variant."""
    return f"{variant}_model"
