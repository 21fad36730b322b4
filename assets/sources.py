"""What the pipeline starts from and never writes: the dataset folder and the two human-edited label
files, as observable source assets whose data version is a fingerprint of their files.

While the automation sensor runs, they are observed together, in one step, on the cron of
`MASKOPS_OBSERVE_CRON` (every 5 minutes by default); a new data version is what sets the assets
downstream going (declarative automation, gated by blocking checks)."""

import warnings

import dagster as dg

from assets.catalog import INPUTS, catalog
from assets.policies import OBSERVE
from maskops.files import file_version
from maskops.layout import source_fingerprint
from resources import CompetitionDataset, LabelFiles

DATASET = dg.AssetSpec(
    "dataset_folder", **catalog(INPUTS), kinds={"folder"}, automation_condition=OBSERVE,
    description="The dataset in the competition layout: its CSVs' bytes and every image's name, size and modification time "
    "(no image is read). A new version means new, changed or removed files.",
)  # fmt: skip
CORRECTIONS = dg.AssetSpec("corrections_file", **catalog(INPUTS), kinds={"csv"}, automation_condition=OBSERVE,
                           description="labels/corrections.csv as people write it (its bytes' hash).")  # fmt: skip
EXCLUSIONS = dg.AssetSpec("exclusions_file", **catalog(INPUTS), kinds={"csv"}, automation_condition=OBSERVE,
                          description="labels/exclusions.csv as people write it (its bytes' hash).")  # fmt: skip

# observable source assets are a beta API of Dagster 1.13 (in use since 1.4): say so once, here
warnings.filterwarnings("ignore", message=r"Function `multi_observable_source_asset` is currently in beta", category=dg.BetaWarning)


@dg.multi_observable_source_asset(specs=[DATASET, CORRECTIONS, EXCLUSIONS], name="sources", group_name=INPUTS)
def sources(dataset: CompetitionDataset, labels: LabelFiles):
    """One step looks at all three: a run's cost is mostly loading the code location, so it is paid once."""
    yield dg.ObserveResult(asset_key=DATASET.key, data_version=dg.DataVersion(source_fingerprint(dataset.root)),
                           metadata={"root": dg.MetadataValue.path(dataset.root)})  # fmt: skip
    for spec, path in ((CORRECTIONS, labels.corrections), (EXCLUSIONS, labels.exclusions)):
        yield dg.ObserveResult(asset_key=spec.key, data_version=dg.DataVersion(file_version(path)),
                               metadata={"path": dg.MetadataValue.path(str(path)), "exists": dg.MetadataValue.bool(path.exists())})  # fmt: skip


SOURCE_KEYS = [DATASET.key, CORRECTIONS.key, EXCLUSIONS.key]
EVERYTHING = dg.AssetSelection.all() | dg.AssetSelection.assets(*SOURCE_KEYS)
