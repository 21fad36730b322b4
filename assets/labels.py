"""The human-edited label files as assets, so their versions show in the lineage and their
contracts (expectations/label_files.py) run before anything uses them."""

import dagster as dg

from assets.catalog import INPUTS, catalog
from assets.policies import DOWNSTREAM
from assets.sources import CORRECTIONS, EXCLUSIONS
from maskops.cleaning import EXCLUSION_COLUMNS
from maskops.corrections import CORRECTION_COLUMNS, read_label_table
from maskops.files import file_version
from resources import LabelFiles


def label_table_asset(name: str, source: dg.AssetSpec, attribute: str, columns: tuple[str, ...], what: str) -> dg.AssetsDefinition:
    @dg.asset(name=name, deps=[source.key], **catalog(INPUTS), code_version="1", kinds={"csv", "parquet"},
              io_manager_key="manifest_io_manager", automation_condition=DOWNSTREAM, description=what)  # fmt: skip
    def label_table(labels: LabelFiles) -> dg.MaterializeResult:
        path = getattr(labels, attribute)
        rows = read_label_table(path, columns)
        metadata = {
            "file": dg.MetadataValue.path(str(path)),
            "rows": dg.MetadataValue.int(len(rows)),
            "exists": dg.MetadataValue.bool(path.exists()),
        }
        return dg.MaterializeResult(value=rows, data_version=dg.DataVersion(file_version(path)), metadata=metadata)

    return label_table


label_corrections = label_table_asset("label_corrections", CORRECTIONS, "corrections", CORRECTION_COLUMNS,
                                      "labels/corrections.csv as written by people (profile_id, stem, field, value, reason), with line numbers.")  # fmt: skip
label_exclusions = label_table_asset("label_exclusions", EXCLUSIONS, "exclusions", EXCLUSION_COLUMNS,
                                     "labels/exclusions.csv as written by people (profile_id, stem, reason), with line numbers.")  # fmt: skip
