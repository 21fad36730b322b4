"""IO managers: manifests (pandas DataFrames) as Parquet and small records (dicts) as JSON,
locally or on any fsspec/UPath location, written atomically."""

import json

import dagster as dg
import pandas as pd
from pydantic import Field
from upath import UPath

from maskops.columns import describe
from maskops.files import write_atomic


class ParquetManifestIOManager(dg.UPathIOManager):
    """One Parquet file per asset (and partition) under a base path."""

    extension = ".parquet"

    def dump_to_path(self, context: dg.OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()} returned {type(obj).__name__}; this IO manager stores pandas DataFrames")
        write_atomic(path, lambda f: obj.to_parquet(f, index=False))

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        with path.open("rb") as f:
            return pd.read_parquet(f)

    def get_metadata(self, context: dg.OutputContext, obj: pd.DataFrame) -> dict[str, dg.MetadataValue]:
        schema = dg.TableSchema(
            columns=[dg.TableColumn(str(c), str(t), description=describe(str(c)) or None) for c, t in obj.dtypes.items()]
        )
        return {"dagster/row_count": dg.MetadataValue.int(len(obj)), "dagster/column_schema": dg.MetadataValue.table_schema(schema)}


class JsonRecordIOManager(dg.UPathIOManager):
    """Small records (a model's run id, URI and metrics) as JSON: never a pickled model."""

    extension = ".json"

    def dump_to_path(self, context: dg.OutputContext, obj: dict, path: UPath) -> None:
        if not isinstance(obj, dict):
            raise TypeError(f"{context.asset_key.to_user_string()} returned {type(obj).__name__}; this IO manager stores dicts")
        data = json.dumps(obj, indent=2, sort_keys=True, default=str).encode()
        write_atomic(path, data)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> dict:
        return json.loads(path.read_text())


class ManifestIOManager(dg.ConfigurableIOManagerFactory):
    """Where manifests live: a local folder or a URL such as s3://bucket/maskops/manifests."""

    base_path: str = Field(description="Folder or URL (s3://, gs://, memory://, ...) for the Parquet manifests.")
    storage_options: dict[str, str] = Field(default_factory=dict, description="fsspec options for base_path, e.g. credentials.")

    def create_io_manager(self, context: dg.InitResourceContext) -> ParquetManifestIOManager:
        return ParquetManifestIOManager(base_path=UPath(self.base_path, **self.storage_options))


class RecordIOManager(dg.ConfigurableIOManagerFactory):
    """Where small JSON records live (same kinds of locations as manifests)."""

    base_path: str = Field(description="Folder or URL for the JSON records.")
    storage_options: dict[str, str] = Field(default_factory=dict)

    def create_io_manager(self, context: dg.InitResourceContext) -> JsonRecordIOManager:
        return JsonRecordIOManager(base_path=UPath(self.base_path, **self.storage_options))
