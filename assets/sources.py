"""What the pipeline starts from and never writes: the dataset folder and the two human-edited label
files, as observable source assets whose data version is a fingerprint of their files.

While the automation sensor runs, they are observed once a minute; a new data version is what sets
the assets downstream going (declarative automation, gated by blocking checks)."""

import dagster as dg

from assets.policies import OBSERVE
from maskops.files import file_version
from maskops.layout import source_fingerprint
from resources import CompetitionDataset, LabelFiles

GROUP = "sources"


@dg.observable_source_asset(group_name=GROUP, automation_condition=OBSERVE, kinds={"folder"})
def dataset_folder(dataset: CompetitionDataset) -> dg.ObserveResult:
    """The dataset in the competition layout: its CSVs' bytes and every image's name, size and modification time
    (no image is read). A new version means new, changed or removed files."""
    return dg.ObserveResult(
        data_version=dg.DataVersion(source_fingerprint(dataset.root)), metadata={"root": dg.MetadataValue.path(dataset.root)}
    )


def label_file_source(name: str, attribute: str, what: str) -> dg.SourceAsset:
    @dg.observable_source_asset(name=name, group_name=GROUP, automation_condition=OBSERVE, kinds={"csv"}, description=what)
    def source(labels: LabelFiles) -> dg.ObserveResult:
        path = getattr(labels, attribute)
        return dg.ObserveResult(
            data_version=dg.DataVersion(file_version(path)),
            metadata={"path": dg.MetadataValue.path(str(path)), "exists": dg.MetadataValue.bool(path.exists())},
        )

    return source


corrections_file = label_file_source("corrections_file", "corrections", "labels/corrections.csv as people write it (its bytes' hash).")
exclusions_file = label_file_source("exclusions_file", "exclusions", "labels/exclusions.csv as people write it (its bytes' hash).")
sources = [dataset_folder, corrections_file, exclusions_file]
