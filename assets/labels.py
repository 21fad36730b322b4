"""The human-edited label files as assets, so their versions show in the lineage and their
contracts (expectations/label_files.py) run before anything uses them."""

import dagster as dg
import pandas as pd

from maskops.cleaning import EXCLUSION_COLUMNS
from maskops.corrections import CORRECTION_COLUMNS, read_label_table
from resources import LabelFiles
from resources.labels import file_version

GROUP = "labels"


def _result(path, table: pd.DataFrame) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        value=table,
        data_version=dg.DataVersion(file_version(path)),
        metadata={
            "file": dg.MetadataValue.path(str(path)),
            "rows": dg.MetadataValue.int(len(table)),
            "exists": dg.MetadataValue.bool(path.exists()),
        },
    )


@dg.asset(group_name=GROUP, code_version="1", kinds={"csv", "parquet"}, io_manager_key="manifest_io_manager")
def label_corrections(labels: LabelFiles) -> dg.MaterializeResult:
    """labels/corrections.csv as written by people (profile_id, stem, field, value, reason), with line numbers."""
    return _result(labels.corrections, read_label_table(labels.corrections, CORRECTION_COLUMNS))


@dg.asset(group_name=GROUP, code_version="1", kinds={"csv", "parquet"}, io_manager_key="manifest_io_manager")
def label_exclusions(labels: LabelFiles) -> dg.MaterializeResult:
    """labels/exclusions.csv as written by people (profile_id, stem, reason), with line numbers."""
    return _result(labels.exclusions, read_label_table(labels.exclusions, EXCLUSION_COLUMNS))
