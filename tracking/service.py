"""The one place that talks to MLflow: a tracking service that owns its client.

Tracking and registry URIs are explicit and held by the client; nothing here calls
`mlflow.set_tracking_uri` or relies on an active run, so two services on two stores can live
in one process (the pipeline, a test and a CLI command alike). Models are written with the
flavours' `save_model` into a temporary folder and uploaded as MLflow 3 logged models; they
are read back by downloading them through this client first.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import DatasetInput, InputTag, LoggedModelOutput, Metric, Param, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode

from maskops.csv_safety import escape_formulas
from tracking.relocate import follow_artifact_root

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

MAX_PARAM_LENGTH = 6000
# MLflow 3's UI opens an experiment on its GenAI dashboard (traces) unless the experiment says it trains models
# (the UI maps this tag to its "machine learning" workflow: the runs table)
EXPERIMENT_KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
RUN_NOTE_TAG = "mlflow.note.content"  # the run's description, markdown
DEFAULT_UI_URL = "http://127.0.0.1:5000"  # where `maskops mlflow-ui` serves a local store
DEFAULT_DAGSTER_UI_URL = "http://127.0.0.1:3000"  # where `maskops ui` serves Dagster
RESUMED_TAG = "maskops.resumed"  # how many times a run was reopened to resume its training
ABANDONED_TAG = "maskops.abandoned"  # why a run was closed as KILLED by another process


def pinned(*packages: str) -> list[str]:
    """pip requirements at the versions installed here (what the code was tested with)."""
    return [f"{p}=={installed_version(p)}" for p in packages]


def is_not_found(exc: MlflowException) -> bool:
    """True only for 'this name, version or alias does not exist' — never for timeouts or locked databases."""
    return exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)


@dataclass(frozen=True)
class LoggedModel:
    model_id: str
    run_id: str
    artifact_location: str

    @property
    def uri(self) -> str:
        return f"models:/{self.model_id}"


@dataclass(frozen=True)
class InputTable:
    """A table a run read (its training or validation set), logged as an MLflow dataset input."""

    frame: pd.DataFrame
    name: str
    source: str
    context: str
    targets: str | None = None


class TrackedRun:
    """One MLflow run, written through the service's client."""

    def __init__(self, service: TrackingService, run_id: str, experiment_id: str):
        self.service, self.run_id, self.experiment_id = service, run_id, experiment_id
        self.client = service.client

    @property
    def link(self) -> str:
        return self.service.run_link(self.experiment_id, self.run_id)

    def log_params(self, params: Mapping[str, Any]) -> None:
        items = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        now = int(pd.Timestamp.now().timestamp() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for start in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[start : start + 500])

    def log_inputs(self, tables: Sequence[InputTable]) -> None:
        import mlflow.data

        inputs = []
        for t in tables:
            dataset = mlflow.data.from_pandas(t.frame, source=t.source, name=t.name, targets=t.targets)
            inputs.append(DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", t.context)]))
        self.client.log_inputs(self.run_id, datasets=inputs)

    def log_files(self, files: Mapping[str, bytes | str | pd.DataFrame], artifact_path: str | None = None) -> None:
        """Small files (name -> bytes, text or a DataFrame written as CSV) as artifacts of the run."""
        with tempfile.TemporaryDirectory() as tmp:
            for name, content in files.items():
                path = Path(tmp) / name
                if isinstance(content, pd.DataFrame):  # people open these in spreadsheets: formulas escaped
                    escape_formulas(content).to_csv(path, index=isinstance(content.index, pd.Index) and content.index.name is not None)
                elif isinstance(content, str):
                    path.write_text(content)
                else:
                    path.write_bytes(content)
            self.client.log_artifacts(self.run_id, tmp, artifact_path)

    def log_json(self, name: str, value: Any, artifact_path: str | None = None) -> None:
        self.log_files({name: json.dumps(value, indent=2, default=str)}, artifact_path)

    def _log_model(self, name: str, save: Callable[[str, Any], None]) -> LoggedModel:
        from mlflow.models import Model

        model = self.client.create_logged_model(self.experiment_id, name=name, source_run_id=self.run_id)
        self.client.log_outputs(self.run_id, [LoggedModelOutput(model.model_id, step=0)])
        with tempfile.TemporaryDirectory() as tmp:
            local = str(Path(tmp) / "model")
            description = Model(
                artifact_path=model.artifact_location, model_uuid=model.model_id, run_id=self.run_id, model_id=model.model_id
            )
            save(local, description)
            self.client.log_model_artifacts(model.model_id, local)
        self.client.finalize_logged_model(model.model_id, "READY")
        return LoggedModel(model.model_id, self.run_id, model.artifact_location)

    def log_pytorch_model(self, module, example, metadata: Mapping[str, Any], requirements: list[str]) -> LoggedModel:
        """A `torch.export` (pt2) graph: loads without the code that defined it and without unpickling. With
        metadata["architecture"] ({backbone, head} of a maskops.models.ProbabilityModel), also its weights as
        safetensors (WEIGHTS_FILE), which maskops loads instead: ~0.05 s against ~1.4 s for the graph."""
        import mlflow.pytorch

        from maskops.models import WEIGHTS_FILE, save_weights
        from tracking.graphs import traces_reused

        def save(path: str, description) -> None:
            with traces_reused():  # the demo's four members share one architecture: one trace, four sets of weights
                mlflow.pytorch.save_model(module, path, mlflow_model=description, input_example=example, serialization_format="pt2",
                                          pip_requirements=requirements, metadata=dict(metadata))  # fmt: skip
            if "architecture" in metadata and rebuilds_alike(module, example, metadata["architecture"]):
                save_weights(module, Path(path) / WEIGHTS_FILE, **metadata["architecture"])

        return self._log_model("model", save)

    def log_pyfunc_model(self, name: str, code: Path, artifacts: Mapping[str, str], model_config: Mapping[str, Any], signature,
                         code_paths: Sequence[str], requirements: list[str]) -> LoggedModel:  # fmt: skip
        """A pyfunc model defined from code (a file path, not a pickled object); artifacts are local paths."""
        import mlflow.pyfunc

        def save(path: str, description) -> None:
            mlflow.pyfunc.save_model(path, python_model=str(code), artifacts=dict(artifacts), model_config=dict(model_config),
                                     signature=signature, code_paths=list(code_paths), pip_requirements=requirements,
                                     mlflow_model=description)  # fmt: skip

        return self._log_model(name, save)


def ui_url_for(tracking_uri: str, ui_url: str = "") -> str:
    """The MLflow UI that shows `tracking_uri`: `ui_url` when given, a tracking server's own address, the address
    `maskops mlflow-ui` serves a local store on (SQLite, a folder); "" for a database no UI is known for."""
    if ui_url:
        return ui_url.rstrip("/")
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    if tracking_uri.startswith(("sqlite:", "file:")) or "://" not in tracking_uri:
        return DEFAULT_UI_URL
    return ""


# The MLflow 3 UI opens an experiment on its GenAI dashboard unless the URL (or the browser's saved choice) asks for the
# model-training view; the mlflow.experimentKind tag does not change that default (seen in MLflow 3.17's UI).
MODEL_TRAINING_VIEW = "workflowType=machine_learning"

# The runs table's default columns hold no metric (MLflow 3.17: Source, Models, Dataset), and no server setting changes
# that. A "shared view" does: an experiment tag mlflow.sharedViewState.<key> holding the table's state, applied when the
# URL carries viewStateShareKey=<key> and no search parameter (the UI ignores the view when searchFilter, orderByKey, ...
# are in the URL). It changes nothing a person saved for themselves unless they choose "Override saved view".
RUNS_VIEW_KEY = "maskops"
RUNS_VIEW_TAG = f"mlflow.sharedViewState.{RUNS_VIEW_KEY}"
RUNS_VIEW_METRICS = ("val_macro_f1", "val_mask_f1", "val_gender_f1", "val_age_f1", "val_accuracy", "best_epoch", "served_val_macro_f1")
RUNS_VIEW_PARAMS = ("variant", "preset", "backbone")


def runs_view_state() -> str:
    """The runs table maskops' links open: the validation metrics and what the model was trained on, as columns."""
    columns = [  # in this order, metrics first (the Dataset column is wide and says little: a run's page lists its inputs)
        *(f"metrics.`{name}`" for name in RUNS_VIEW_METRICS),
        *(f"params.`{name}`" for name in RUNS_VIEW_PARAMS),
        *(f"attributes.`{name}`" for name in ("Models", "Source")),
    ]
    state = {"selectedColumns": columns}
    return json.dumps({"name": "maskops: validation metrics", "createdAt": 0, "state": json.dumps(state)})


def experiment_link(ui_url: str, experiment_id: str) -> str:
    """The experiment's runs in the MLflow UI, on the model-training view, with the validation metrics as columns."""
    return f"{ui_url}/#/experiments/{experiment_id}/runs?{MODEL_TRAINING_VIEW}&viewStateShareKey={RUNS_VIEW_KEY}"


def version_link(ui_url: str, name: str, version: str) -> str:
    """A registered version's page in the MLflow UI at `ui_url`, or its models:/ URI when no UI is known."""
    return f"{ui_url}/#/models/{name}/versions/{version}" if ui_url else f"models:/{name}/{version}"


def dagster_run_markdown(run_url: str) -> str:
    """A Dagster run's page as a markdown link named by the run id's first 8 characters."""
    return f"[{run_url.rsplit('/', 1)[-1][:8]}]({run_url})"


def dagster_links(tags: Mapping[str, str], dagster_ui_url: str) -> dict[str, str]:
    """For a run made by a Dagster run (tag dagster.run_id): a link back to it (tag dagster.run_url) and a markdown
    description linking the run and the asset; nothing for other runs."""
    run_id, asset = tags.get("dagster.run_id"), tags.get("dagster.asset_key", "")
    if not run_id or not dagster_ui_url:
        return {}
    base = dagster_ui_url.rstrip("/")
    run_url = f"{base}/runs/{run_id}"
    asset_part = f" materializing asset [{asset}]({base}/assets/{asset})" if asset else ""
    return {"dagster.run_url": run_url, RUN_NOTE_TAG: f"Made by Dagster run {dagster_run_markdown(run_url)}{asset_part}."}


def rebuilds_alike(module, example, architecture: Mapping[str, str]) -> bool:
    """Whether `module` rebuilt from its weights and `architecture` answers like `module` itself on inputs shaped like
    `example` (random: an example of zeros hides a swapped activation) — a module trained in another shape must be
    served from its graph, not rebuilt."""
    import torch

    from maskops.models import MaskNet, ProbabilityModel

    try:
        rebuilt = ProbabilityModel(MaskNet(architecture["backbone"], architecture["head"])).eval()
        rebuilt.load_state_dict(module.state_dict(), strict=True)
        x = torch.randn(tuple(example.shape), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            return bool(torch.allclose(rebuilt(x), module.eval()(x), atol=1e-5))
    except Exception:
        return False


def load_logged_module(local: Path):
    """The module logged in the model folder `local`: from its safetensors weights when it has them
    (log_pytorch_model), else — or when they no longer rebuild, e.g. under another timm — from its pt2 graph."""
    import mlflow.pytorch

    from maskops.models import WEIGHTS_FILE, load_weights
    from tracking.ensemble_model import type_hints_cached

    if (local / WEIGHTS_FILE).is_file():
        try:
            return load_weights(local / WEIGHTS_FILE)
        except Exception as exc:
            warnings.warn(f"{local}: its weights do not rebuild ({exc}); loading its pt2 graph", stacklevel=2)
    with type_hints_cached():
        return mlflow.pytorch.load_model(str(local), map_location="cpu")


class TrackingService:
    """MLflow tracking and registry behind one client; an experiment that is created on first use.

    `ui_url`: the MLflow UI links point at (default: see `ui_url_for`); `dagster_ui_url`: the Dagster UI that runs made by
    Dagster link back to ("" for no links)."""

    def __init__(self, tracking_uri: str, registry_uri: str = "", artifact_root: str = "", experiment: str = "maskops", ui_url: str = "",
                 dagster_ui_url: str = DEFAULT_DAGSTER_UI_URL):  # fmt: skip
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.artifact_root, self.experiment = artifact_root, experiment
        self.ui_url, self.dagster_ui_url = ui_url_for(tracking_uri, ui_url), dagster_ui_url
        if artifact_root:  # a local store that moved with its state folder: its recorded locations follow it
            follow_artifact_root(self.tracking_uri, experiment, artifact_root)
        self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
        self._experiment_id: str | None = None

    def experiment_id(self) -> str:
        """The experiment's id (created when missing), marked as model training so MLflow's UI opens on its runs."""
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            if found is not None:
                self._experiment_id = found.experiment_id
                for tag, value in self._experiment_tags().items():  # an experiment made before a tag existed or changed
                    if found.tags.get(tag) != value:
                        self.client.set_experiment_tag(self._experiment_id, tag, value)
            else:
                location = self.artifact_root or None
                if location and "://" not in location:
                    Path(location).mkdir(parents=True, exist_ok=True)
                    location = Path(location).absolute().as_uri()
                self._experiment_id = self.client.create_experiment(
                    self.experiment, artifact_location=location, tags=self._experiment_tags()
                )
        return self._experiment_id

    @staticmethod
    def _experiment_tags() -> dict[str, str]:
        """Model training (the UI's sidebar), and the runs view that experiment_link opens."""
        return {EXPERIMENT_KIND_TAG: MODEL_TRAINING, RUNS_VIEW_TAG: runs_view_state()}

    @contextlib.contextmanager
    def run(self, name: str, tags: Mapping[str, str], resume_run_id: str | None = None) -> Iterator[TrackedRun]:
        """A run in the experiment, ended FINISHED, or FAILED when the block raises; a run made by Dagster links back.

        `resume_run_id`: reopen that run (RUNNING again, `tags` set anew: the Dagster run now writing it) so a training
        resumed from a checkpoint logs its remaining epochs where the first ones are; a new run when it is not a live
        run of this experiment (deleted, another store or experiment)."""
        experiment_id = self.experiment_id()
        tags = {**dagster_links(tags, self.dagster_ui_url), **tags}
        run_id = self._reopen(resume_run_id, experiment_id, tags) if resume_run_id else None
        if run_id is None:
            run_id = self.client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        run = TrackedRun(self, run_id, experiment_id)
        try:
            yield run
        except BaseException:
            self.client.set_terminated(run.run_id, RunStatus.to_string(RunStatus.FAILED))
            raise
        self.client.set_terminated(run.run_id, RunStatus.to_string(RunStatus.FINISHED))

    def _reopen(self, run_id: str, experiment_id: str, tags: Mapping[str, str]) -> str | None:
        try:
            found = self.client.get_run(run_id)
        except MlflowException as exc:
            if is_not_found(exc):
                return None
            raise
        if found.info.experiment_id != experiment_id or found.info.lifecycle_stage != "active":
            return None
        self.client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        self.client.set_tag(run_id, RESUMED_TAG, str(int(found.data.tags.get(RESUMED_TAG, "0")) + 1))
        for key, value in tags.items():
            self.client.set_tag(run_id, key, value)
        return run_id

    def close_abandoned_runs(self, asset_key: str, live_dagster_run_ids: Iterable[str]) -> list[str]:
        """Mark KILLED (ended now) the runs of `asset_key` (tag dagster.asset_key) still RUNNING whose Dagster run
        (tag dagster.run_id) is not one of `live_dagster_run_ids`: their process died (kill -9, a lost machine) and
        will never end them. Runs without a Dagster run id are left alone. Returns the ids of the runs closed."""
        live = set(live_dagster_run_ids)
        query = f"tags.`dagster.asset_key` = '{asset_key}' and attributes.status = 'RUNNING'"
        closed, token = [], None
        while True:
            page = self.client.search_runs([self.experiment_id()], query, max_results=1000, page_token=token)
            for found in page:
                dagster_run = found.data.tags.get("dagster.run_id")
                if dagster_run and dagster_run not in live:
                    self.client.set_tag(found.info.run_id, ABANDONED_TAG, f"Dagster run {dagster_run} is no longer running")
                    self.client.set_terminated(found.info.run_id, RunStatus.to_string(RunStatus.KILLED))
                    closed.append(found.info.run_id)
            token = page.token
            if not token:
                return closed

    def run_link(self, experiment_id: str, run_id: str) -> str:
        """The run's page in the MLflow UI, or where to find it when no UI is known."""
        if self.ui_url:
            return f"{self.ui_url}/#/experiments/{experiment_id}/runs/{run_id}?{MODEL_TRAINING_VIEW}"
        return f"runs:/{run_id} in {self.tracking_uri} (set MASKOPS_MLFLOW_UI to the address of an MLflow UI on it)"

    def version_link(self, name: str, version: str) -> str:
        return version_link(self.ui_url, name, version)

    def dagster_run_link(self, run_id: str) -> str:
        """The Dagster run an MLflow run was made by (its dagster.run_url tag), or "" when none is known."""
        return self.client.get_run(run_id).data.tags.get("dagster.run_url", "")

    # -- the registry -------------------------------------------------------------------------

    def register(self, name: str, model: LoggedModel, tags: Mapping[str, str] | None = None, description: str = "",
                 model_description: str = "") -> str:  # fmt: skip
        """A new version of registered model `name` (created when missing, with `model_description`); returns the version."""
        try:
            self.client.create_registered_model(name, description=model_description or None)
        except MlflowException as exc:
            if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            if model_description and self.client.get_registered_model(name).description != model_description:
                self.client.update_registered_model(name, description=model_description)
        # The source is the model's storage location, not models:/<model id>: MLflow's SQL registry resolves
        # the latter through the process-wide tracking URI, which this service never sets.
        created = self.client.create_model_version(name, source=self.location_of(model), run_id=model.run_id, model_id=model.model_id,
                                                   tags=dict(tags or {}), description=description or None)  # fmt: skip
        return str(created.version)

    def version_of(self, name: str, model: LoggedModel) -> str | None:
        """The registered version of `name` made from `model`, if there is one."""
        found = self.client.search_model_versions(f"name = '{name}' and run_id = '{model.run_id}'")
        location = self.location_of(model)
        versions = [v for v in found if v.source == location]
        return str(max(int(v.version) for v in versions)) if versions else None

    def location_of(self, model: LoggedModel) -> str:
        """Where the store keeps the model's files now (a record's copy is stale once the state folder moved); the
        record's own location for a model this store does not know."""
        try:
            return self.client.get_logged_model(model.model_id).artifact_location
        except MlflowException as exc:
            if is_not_found(exc):
                return model.artifact_location
            raise

    def registered_model_names(self) -> list[str]:
        return sorted(m.name for m in self.client.search_registered_models())

    # -- reading models back ------------------------------------------------------------------

    def download(self, model_uri: str, dst: str | os.PathLike) -> Path:
        """The model's files on this machine (models:/NAME/VERSION, models:/NAME@ALIAS, models:/<model id>, runs:/...)."""
        import mlflow.artifacts

        Path(dst).mkdir(parents=True, exist_ok=True)
        local = mlflow.artifacts.download_artifacts(artifact_uri=self.storage_location(model_uri), dst_path=str(dst),
                                                    tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)  # fmt: skip
        return Path(local)

    def storage_location(self, model_uri: str) -> str:
        """Where a models:/ URI's files are, resolved with this client (MLflow's own resolution reads the
        process-wide registry URI); other URIs are returned as they are."""
        from mlflow.store.artifact.utils.models import get_model_name_and_version

        if not model_uri.startswith("models:"):
            return model_uri
        found = get_model_name_and_version(self.client, model_uri)
        if len(found) == 1:
            return self.client.get_logged_model(found[0]).artifact_location
        return self.client.get_model_version_download_uri(*found)

    def load_pytorch(self, model_uri: str):
        """The logged module (see load_logged_module)."""
        with tempfile.TemporaryDirectory() as tmp:
            return load_logged_module(self.download(model_uri, tmp))

    def load_pyfunc(self, model_uri: str):
        """The pyfunc model; its files stay in a temporary folder for as long as the process runs."""
        import mlflow.pyfunc

        folder = tempfile.mkdtemp(prefix="maskops-model-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        return mlflow.pyfunc.load_model(str(self.download(model_uri, folder)))
