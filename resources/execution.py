"""Where steps run: in the run's own process on the local profile, on Celery workers in production.

Production steps go to Celery queues by their op tags (assets.policies): `gpu` for training, `images` for image
models, `dagster` for the rest. A task is acknowledged only when its step finished and is handed back to the
broker when its worker dies (acks late, reject on worker lost), so a killed worker's step runs again on another
worker (with RabbitMQ at once; Redis only after its visibility timeout, 24 hours).
"""

from __future__ import annotations

import dagster as dg

from maskops.settings import Settings

CELERY_APP_CONFIG = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
    # Redis hands an unacknowledged task to another worker after this long: longer than any step, or a long training
    # step would run twice (RabbitMQ's consumer timeout: docker/compose.yaml)
    "broker_transport_options": {"visibility_timeout": 24 * 3600},
}


def celery_config(settings: Settings) -> dict:
    """The Celery executor's run config: broker and backend from the environment (credentials stay out of files)."""
    backend = {"env": "MASKOPS_CELERY_BACKEND"} if settings.services.celery_backend != "rpc://" else "rpc://"
    return {"broker": {"env": "MASKOPS_CELERY_BROKER"}, "backend": backend, "config_source": CELERY_APP_CONFIG}


# On Kubernetes (MASKOPS_EXECUTOR=k8s, with the K8sRunLauncher of docker/k8s/values.yaml) every step is a Job of
# the run's image; a training step's pod asks for a GPU through its dagster-k8s/config tag (assets.policies).
# Every step's pod mounts the state folder (checkpoints a killed training resumes from, the GX project, reports) and
# the dataset and label files, from PersistentVolumeClaims of these names (docker/k8s/values.yaml mounts the same in
# the code location's and the runs' pods); without them a step saw an empty dataset and its checkpoints died with it.
K8S_VOLUMES = [
    {"name": "maskops-home", "persistentVolumeClaim": {"claimName": "maskops-home"}},
    {"name": "dataset", "persistentVolumeClaim": {"claimName": "maskops-dataset", "readOnly": True}},
    {"name": "labels", "persistentVolumeClaim": {"claimName": "maskops-labels"}},
]
K8S_VOLUME_MOUNTS = [
    {"name": "maskops-home", "mountPath": "/data/maskops"},
    {"name": "dataset", "mountPath": "/data/dataset", "readOnly": True},
    {"name": "labels", "mountPath": "/data/labels"},
]
# The image runs as uid 10001 (docker/Dockerfile): storage that mounts root-owned is made writable to its group;
# OnRootMismatch changes ownership once, not on every pod's start (the dataset holds thousands of photos).
IMAGE_UID = 10001
K8S_POD_SECURITY = {"fs_group": IMAGE_UID, "fs_group_change_policy": "OnRootMismatch"}
K8S_CONFIG = {"max_concurrent": 8, "env_secrets": ["maskops-secrets"], "env_config_maps": ["maskops-env"], "volumes": K8S_VOLUMES,
              "volume_mounts": K8S_VOLUME_MOUNTS, "step_k8s_config": {"pod_spec_config": {"security_context": K8S_POD_SECURITY}}}  # fmt: skip


def default_executor(settings: Settings) -> dg.ExecutorDefinition:
    """The code location's executor (the UI's runs, the automation): in the run's own process locally, as the named
    jobs; in production Celery, or one Kubernetes Job per step.

    Locally, Dagster's default (a process per step, spawned) made every step import the code location and its libraries
    again, and the crop steps load their image models again: the datasets and their contracts (14 steps) took 106 s
    that way against 20 s in one process on 2026-12-07's 2-core host, and with the crops from the image store (25
    steps) 136 against 28 s (`dagster asset materialize` on the demo's state). What a process per step could buy,
    steps side by side, the `cores` pool forbids for the heavy steps anyway (one at a time across runs), and the light
    ones are mostly start-up."""
    if not settings.production:
        return dg.in_process_executor
    if settings.services.executor == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor.configured(K8S_CONFIG, name="k8s")
    from dagster_celery import celery_executor

    return celery_executor.configured(celery_config(settings), name="celery")


def job_executor(settings: Settings) -> tuple[dg.ExecutorDefinition, dict]:
    """A named job's executor and its default run config: in-process locally; in production Celery, with broker and
    backend in the job's config so a run can pick another broker (Redis or RabbitMQ) in the Launchpad, or Kubernetes."""
    if not settings.production:
        return dg.in_process_executor, {}
    if settings.services.executor == "k8s":
        return default_executor(settings), {}
    from dagster_celery import celery_executor

    return celery_executor, {"execution": {"config": celery_config(settings)}}
