"""The Kubernetes path, rendered without a cluster: with MASKOPS_EXECUTOR=k8s every step is a Kubernetes Job, a
training step's pod asks for a GPU, an image step's does not; the Helm values agree with the code location."""

from __future__ import annotations

from pathlib import Path

import yaml

from maskops.settings import Settings
from resources.execution import default_executor

VALUES = Path(__file__).resolve().parents[1] / "docker/k8s/values.yaml"
PRODUCTION = {
    "MASKOPS_PROFILE": "production", "MASKOPS_EXECUTOR": "k8s", "MLFLOW_TRACKING_URI": "http://mlflow:5000",
    "MASKOPS_OBJECT_STORE": "s3://maskops/data", "MASKOPS_DAGSTER_POSTGRES_URL": "postgresql+psycopg2://maskops@postgres/dagster",
}  # fmt: skip


def _job(assets_def, image: str):
    """The Kubernetes Job of one step, as k8s_job_executor configured by the code location builds it."""
    from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job, get_user_defined_k8s_config

    from resources.execution import K8S_CONFIG

    config = DagsterK8sJobConfig(job_image=image, dagster_home="/data/maskops/dagster", image_pull_policy="IfNotPresent",
                                 volumes=K8S_CONFIG["volumes"], volume_mounts=K8S_CONFIG["volume_mounts"])  # fmt: skip
    return construct_dagster_k8s_job(
        config, ["dagster", "api", "execute_step"], "maskops-step", get_user_defined_k8s_config(assets_def.op.tags)
    )


def _pod(assets_def, image: str):
    return _job(assets_def, image).spec.template.spec.containers[0]


def test_training_steps_ask_kubernetes_for_a_gpu():
    from assets.cropped import cropped_assets
    from assets.models import model_assets

    settings = Settings.from_env(PRODUCTION)
    assert settings.production_problems() == [] and default_executor(settings).name == "k8s"
    training = _pod(model_assets[0], "maskops:cuda")
    assert training.resources.limits == {"nvidia.com/gpu": "1"} and training.resources.requests == {"nvidia.com/gpu": "1"}
    assert training.image == "maskops:cuda" and training.args == ["dagster", "api", "execute_step"]
    cropping = _pod(cropped_assets[0], "maskops:cpu")
    assert not (cropping.resources and cropping.resources.limits)  # image steps stay on CPU nodes


def test_helm_values_match_the_code_location():
    values = yaml.safe_load(VALUES.read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "assets.definitions"] and deployment["port"] == 4000
    assert values["runLauncher"]["type"] == "K8sRunLauncher" and values["postgresql"]["enabled"] is False
    env = values["maskopsEnv"]
    assert (
        Settings.from_env({**env, "MASKOPS_DAGSTER_POSTGRES_URL": PRODUCTION["MASKOPS_DAGSTER_POSTGRES_URL"]}).production_problems() == []
    )
    assert not any(k.startswith("AWS_SECRET") or "PASSWORD" in k for k in env)  # secrets live in the maskops-secrets Secret


def test_every_step_mounts_the_state_the_dataset_and_the_labels():
    """A step's pod once had no volumes: it read an empty dataset, and a killed training's checkpoint died with its pod."""
    from assets.models import model_assets

    job = _job(model_assets[0], "maskops:cuda")
    mounts = {m.mount_path: (m.name, bool(m.read_only)) for m in job.spec.template.spec.containers[0].volume_mounts}
    assert mounts == {"/data/maskops": ("maskops-home", False), "/data/dataset": ("dataset", True), "/data/labels": ("labels", False)}
    claims = {v.name: v.persistent_volume_claim.claim_name for v in job.spec.template.spec.volumes}
    assert claims == {"maskops-home": "maskops-home", "dataset": "maskops-dataset", "labels": "maskops-labels"}
    values = yaml.safe_load(VALUES.read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    for pod in (deployment, launcher):  # the code location and every run see the same folders
        assert {m["mountPath"] for m in pod["volumeMounts"]} == set(mounts)
        assert {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]} == set(claims.values())
    settings = Settings.from_env(values["maskopsEnv"])
    assert (str(settings.home), str(settings.dataset), str(settings.labels)) == ("/data/maskops", "/data/dataset", "/data/labels")


def test_helm_values_give_the_instance_what_compose_gives_it():
    """The chart writes its own dagster.yaml from these values: without them every queued run started at once and no
    retraining waited for the one before."""
    from resources.instance import PRODUCTION_YAML

    instance = yaml.safe_load(PRODUCTION_YAML)
    daemon = yaml.safe_load(VALUES.read_text())["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert daemon["runCoordinator"]["enabled"] and daemon["runCoordinator"]["type"] == instance["run_coordinator"]["class"]
    assert queued["maxConcurrentRuns"] == instance["concurrency"]["runs"]["max_concurrent_runs"]
    assert queued["tagConcurrencyLimits"] == instance["concurrency"]["runs"]["tag_concurrency_limits"]
    monitoring = {"enabled": "enabled", "startTimeoutSeconds": "start_timeout_seconds", "maxResumeRunAttempts": "max_resume_run_attempts",
                  "pollIntervalSeconds": "poll_interval_seconds", "freeSlotsAfterRunEndSeconds": "free_slots_after_run_end_seconds"}  # fmt: skip
    assert set(monitoring.values()) == set(instance["run_monitoring"])  # every setting of compose's instance, by its chart name
    assert {k: daemon["runMonitoring"][k] for k in monitoring} == {k: instance["run_monitoring"][v] for k, v in monitoring.items()}


def test_every_pod_can_write_the_claims_it_mounts():
    """The image runs as uid 10001: on storage that mounts root-owned, a step could not write its checkpoint or report."""
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import DagsterK8sJobConfig, UserDefinedDagsterK8sConfig, construct_dagster_k8s_job, get_user_defined_k8s_config

    from assets.models import model_assets
    from resources.execution import IMAGE_UID, K8S_CONFIG

    dockerfile = (VALUES.parents[1] / "Dockerfile").read_text()
    assert f"USER {IMAGE_UID}" in dockerfile and f"--uid {IMAGE_UID}" in dockerfile
    # as k8s_job_executor builds a step's Job: its step_k8s_config merged with the op's dagster-k8s/config tag (the GPU)
    context = K8sContainerContext(run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(K8S_CONFIG["step_k8s_config"]))
    context = context.merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(model_assets[0].op.tags)))
    config = DagsterK8sJobConfig(job_image="maskops:cuda", dagster_home="/data/maskops/dagster", image_pull_policy="IfNotPresent",
                                 volumes=K8S_CONFIG["volumes"], volume_mounts=K8S_CONFIG["volume_mounts"])  # fmt: skip
    job = construct_dagster_k8s_job(config, ["dagster", "api", "execute_step"], "maskops-step", context.run_k8s_config)
    pod = job.spec.template.spec
    assert pod.security_context.fs_group == IMAGE_UID and pod.security_context.fs_group_change_policy == "OnRootMismatch"
    assert pod.containers[0].resources.limits == {"nvidia.com/gpu": "1"}  # the op's own tag still applies
    values = yaml.safe_load(VALUES.read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    run_pods = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["podSpecConfig"]["securityContext"]
    assert deployment["podSecurityContext"] == run_pods == {"fsGroup": IMAGE_UID, "fsGroupChangePolicy": "OnRootMismatch"}
