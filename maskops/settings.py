"""Where maskops keeps its state, from the environment.

One state folder (MASKOPS_HOME, default ./.maskops) holds the Dagster home, manifests,
the image store, models, reports and the demo data; deleting it resets everything.

    MASKOPS_DATASET      dataset root in the competition layout (default: <home>/demo-data)
    MASKOPS_LABELS       folder with corrections.csv and exclusions.csv (default: <home>/labels);
                         for real data, point it at a folder under version control
    MASKOPS_IMAGE_STORE  image store root, a folder or fsspec URL (default: <home>/images)
    MLFLOW_TRACKING_URI  MLflow tracking store (default: sqlite:///<home>/mlflow.db, artifacts in <home>/mlartifacts)
    MASKOPS_MLFLOW_UI    base URL of the MLflow UI Dagster links to (default: a tracking server's own address, or
                         http://127.0.0.1:5000, where `maskops mlflow-ui` serves a local store)
    MASKOPS_OBSERVE_CRON how often the automation looks at the dataset and label files (default every 5 minutes)
    MASKOPS_MODELS       model files provisioned offline (default: <home>/models)
    MASKOPS_BACKGROUND_MODEL  a U2-Net-family ONNX file in the models folder, for crop setting background_model=u2net_custom
    MASKOPS_THREADS      CPU threads for training, face detection, background removal and the worker pools (default:
                         the libraries' own counts capped at the CPUs the process may use — affinity and container
                         quota; maskops.cpus). On a machine busy with other work: the cores that work leaves free

The production profile (MASKOPS_PROFILE=production; README "Production") adds:

    MASKOPS_DAGSTER_POSTGRES_URL  Dagster's run, event-log and schedule storage (postgresql://...)
    MASKOPS_OBJECT_STORE          s3://bucket/prefix for the image store, manifests and model records
    MASKOPS_CELERY_BROKER         amqp://... or redis://... (steps run on Celery workers)
    MASKOPS_CELERY_BACKEND        Celery result backend (default rpc://)
    MASKOPS_EXECUTOR              celery (default) or k8s: every step a Kubernetes Job (dagster-k8s; docker/k8s/)
    MLFLOW_TRACKING_URI           the MLflow tracking server, http://host:port
    MASKOPS_MLFLOW_BACKEND_STORE  the tracking server's own store (postgresql://...), for `maskops tracking-server`
    MASKOPS_MLFLOW_ARTIFACTS      where the tracking server keeps artifacts (s3://bucket/mlartifacts or a folder)
    DAGSTER_HOME                  an explicit Dagster home with its own dagster.yaml wins over <home>/dagster
Credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, database passwords in the URLs) come
from the environment only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from maskops.options import option


class StateFolder:
    """A folder under the state home, read as an attribute of Settings."""

    def __init__(self, relative: str, doc: str):
        self.relative, self.__doc__ = relative, doc

    def __get__(self, settings: Settings | None, owner: type) -> Path | StateFolder:
        return settings.home / self.relative if settings is not None else self


PROFILES = ("local", "production")

# Telemetry is off everywhere (DESIGN), whatever DO_NOT_TRACK says: DO_NOT_TRACK=1 alone would leave MLflow 3 on (it
# honours DO_NOT_TRACK only when the value is "true"), so each tool gets its own switch.
TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",  # mlflow.telemetry.utils.is_telemetry_disabled
    "GX_ANALYTICS_ENABLED": "false",  # Great Expectations' data contexts
    "DAGSTER_DISABLE_TELEMETRY": "true",  # Dagster's upload thread; dagster.yaml also says telemetry: enabled: false
    "DO_NOT_TRACK": "1",  # consoledonottrack.com, for every other tool
}


class SettingsError(ValueError):
    """The environment does not describe a usable profile; the message lists what to set."""


@dataclass(frozen=True)
class Services:
    """The production profile's shared services (MASKOPS_PROFILE=production), from the environment."""

    object_store: str = option("", "MASKOPS_OBJECT_STORE: s3://bucket/prefix for images, manifests and model records.")
    dagster_postgres_url: str = option("", "MASKOPS_DAGSTER_POSTGRES_URL: Dagster's storage on PostgreSQL.")
    celery_broker: str = option("", "MASKOPS_CELERY_BROKER: amqp://... or redis://...")
    celery_backend: str = option("rpc://", "MASKOPS_CELERY_BACKEND: Celery's result backend.")
    executor: str = option("celery", "MASKOPS_EXECUTOR: celery, or k8s (a Kubernetes Job per step).")
    mlflow_backend_store: str = option("", "MASKOPS_MLFLOW_BACKEND_STORE: the tracking server's store (postgresql://...).")
    mlflow_artifacts_destination: str = option("", "MASKOPS_MLFLOW_ARTIFACTS: where the tracking server keeps artifacts.")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Services:
        return cls(
            object_store=env.get("MASKOPS_OBJECT_STORE", "").rstrip("/"), dagster_postgres_url=env.get("MASKOPS_DAGSTER_POSTGRES_URL", ""),
            celery_broker=env.get("MASKOPS_CELERY_BROKER", ""), celery_backend=env.get("MASKOPS_CELERY_BACKEND") or "rpc://",
            executor=env.get("MASKOPS_EXECUTOR") or "celery", mlflow_backend_store=env.get("MASKOPS_MLFLOW_BACKEND_STORE", ""),
            mlflow_artifacts_destination=env.get("MASKOPS_MLFLOW_ARTIFACTS", ""),
        )  # fmt: skip


@dataclass(frozen=True)
class Settings:
    """Where maskops keeps its state and which services it talks to, read once from the environment (from_env)."""

    home: Path
    dataset: Path
    labels: Path
    image_store: str
    mlflow_uri: str
    mlflow_ui: str = option("", "MASKOPS_MLFLOW_UI: base URL of an MLflow UI, for links from Dagster to runs.")
    observe_cron: str = option("*/5 * * * *", "MASKOPS_OBSERVE_CRON: how often the automation looks at the sources.")
    profile: str = option("local", "MASKOPS_PROFILE: local or production.")
    services: Services = field(default_factory=Services)
    explicit_dagster_home: str = option("", "DAGSTER_HOME, when set: a Dagster home with its own dagster.yaml.")
    background_model: str = option("", "MASKOPS_BACKGROUND_MODEL: a U2-Net-family ONNX file in the models folder.")
    models_dir: str = option("", "MASKOPS_MODELS: model files provisioned offline (default <home>/models).")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("MASKOPS_HOME", ".maskops")).expanduser().absolute()
        if home.exists() and not home.is_dir():
            raise SettingsError(f"MASKOPS_HOME={home} is a file: set MASKOPS_HOME to a folder (it is created on first use)")
        dataset = Path(env["MASKOPS_DATASET"]).expanduser().absolute() if env.get("MASKOPS_DATASET") else home / "demo-data"
        labels = Path(env["MASKOPS_LABELS"]).expanduser().absolute() if env.get("MASKOPS_LABELS") else home / "labels"
        profile = env.get("MASKOPS_PROFILE") or "local"
        if profile not in PROFILES:
            raise SettingsError(f"MASKOPS_PROFILE={profile!r}: use one of {', '.join(PROFILES)}")
        services = Services.from_env(env)
        from maskops.cpus import threads_setting

        threads_setting(env)  # a bad MASKOPS_THREADS fails here, named, before any step starts
        store = services.object_store
        return cls(
            home=home, dataset=dataset, labels=labels,
            image_store=env.get("MASKOPS_IMAGE_STORE") or (f"{store}/images" if store else str(home / "images")),
            mlflow_uri=env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}", mlflow_ui=env.get("MASKOPS_MLFLOW_UI", ""),
            observe_cron=env.get("MASKOPS_OBSERVE_CRON") or "*/5 * * * *", profile=profile, explicit_dagster_home=env.get("DAGSTER_HOME", ""),
            background_model=env.get("MASKOPS_BACKGROUND_MODEL", ""), models_dir=env.get("MASKOPS_MODELS", ""), services=services,
        )  # fmt: skip

    @property
    def production(self) -> bool:
        return self.profile == "production"

    def production_problems(self) -> list[str]:
        """What the production profile still lacks (empty when it is complete)."""
        sv = self.services
        missing = [
            ("MASKOPS_DAGSTER_POSTGRES_URL", sv.dagster_postgres_url.startswith(("postgresql", "postgres://")), "postgresql+psycopg2://user:password@host:5432/dagster"),
            ("MLFLOW_TRACKING_URI", self.mlflow_uri.startswith(("http://", "https://")), "http://mlflow:5000 (the tracking server)"),
            ("MASKOPS_OBJECT_STORE", "://" in sv.object_store, "s3://bucket/maskops"),
            ("MASKOPS_CELERY_BROKER", sv.executor != "celery" or sv.celery_broker.startswith(("amqp://", "pyamqp://", "redis://")), "amqp://user:password@rabbitmq:5672// or redis://redis:6379/0"),
            ("MASKOPS_EXECUTOR", sv.executor in ("celery", "k8s"), "celery or k8s"),
        ]  # fmt: skip
        return [f"set {name}, e.g. {example}" for name, ok, example in missing if not ok]

    @property
    def models(self) -> Path:
        """Model files provisioned offline (rembg's U2NET_HOME): MASKOPS_MODELS (an image bakes them in), else <home>/models."""
        return Path(self.models_dir).absolute() if self.models_dir else self.home / "models"

    @property
    def manifests_location(self) -> str:
        """Where the Parquet manifests live: the object store in production, else <home>/manifests."""
        return f"{self.services.object_store}/manifests" if self.services.object_store else str(self.manifests)

    @property
    def records_location(self) -> str:
        return f"{self.services.object_store}/records" if self.services.object_store else str(self.records)

    @property
    def dagster_home(self) -> Path:
        """Dagster's home: dagster.yaml, and runs and asset history on the local profile (an explicit DAGSTER_HOME wins)."""
        return Path(self.explicit_dagster_home).absolute() if self.explicit_dagster_home else self.home / "dagster"

    manifests = StateFolder("manifests", "Parquet manifests of the dataset assets.")
    reports = StateFolder("reports", "Data-quality reports.")
    figures = StateFolder("reports/figures", "Charts, confusion matrices and contact sheets that asset metadata links to.")
    mlflow_artifacts = StateFolder("mlartifacts", "Artifacts of the local MLflow store.")
    checkpoints = StateFolder("checkpoints", "Training checkpoints, so an interrupted run resumes.")
    records = StateFolder("records", "Small JSON records of the model assets.")
    submissions = StateFolder("submissions", "submission.csv.")

    @property
    def mlflow_artifact_root(self) -> str:
        """Where MLflow clients put artifacts: the local store's folder, or "" when a tracking server decides (proxied)."""
        return "" if self.production else str(self.mlflow_artifacts)

    def environment(self) -> dict[str, str]:
        """Variables for child processes (dagster CLI, webserver) so they see the same state."""
        return {
            "MASKOPS_HOME": str(self.home),
            "MASKOPS_DATASET": str(self.dataset),
            "MASKOPS_LABELS": str(self.labels),
            "MASKOPS_IMAGE_STORE": self.image_store,
            "MLFLOW_TRACKING_URI": self.mlflow_uri,
            "MASKOPS_MLFLOW_UI": self.mlflow_ui,
            "MASKOPS_OBSERVE_CRON": self.observe_cron,
            "MASKOPS_PROFILE": self.profile,
            "MASKOPS_BACKGROUND_MODEL": self.background_model,
            "MASKOPS_MODELS": str(self.models),
            "MASKOPS_EXECUTOR": self.services.executor,
            "DAGSTER_HOME": str(self.dagster_home),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            **TELEMETRY_OFF,
        }
