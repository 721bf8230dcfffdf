"""deploy/kuberay/: the fields the KubeRay CRDs (ray.io/v1) define, Ray's `ray start`
parser on rayStartParams, and the RayJob entrypoint through the package's own CLI."""

from __future__ import annotations

import shlex
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from .helpers import (
    DEPLOY,
    REPO,
    containers,
    dockerfile_args,
    dockerfile_instructions,
    load_yaml_docs,
    parse_ray_cli,
    parse_ray_unlearn,
    ray_image_version,
    readme_created_secrets,
    secret_refs,
    walk,
)

KUBERAY = DEPLOY / "kuberay"

# Fields of the ray.io/v1 types (KubeRay's ray-operator/apis/ray/v1 *_types.go; authOptions since v1.5.1).
RAY_CLUSTER_SPEC = {"suspend", "managedBy", "autoscalerOptions", "headServiceAnnotations", "enableInTreeAutoscaling",
                    "gcsFaultToleranceOptions", "headGroupSpec", "rayVersion", "workerGroupSpecs", "authOptions"}
HEAD_GROUP_SPEC = {"template", "headService", "enableIngress", "rayStartParams", "serviceType"}
WORKER_GROUP_SPEC = {"suspend", "groupName", "replicas", "minReplicas", "maxReplicas", "idleTimeoutSeconds",
                     "rayStartParams", "template", "scaleStrategy", "numOfHosts"}
AUTOSCALER_OPTIONS = {"resources", "image", "imagePullPolicy", "securityContext", "idleTimeoutSeconds", "upscalingMode",
                      "env", "envFrom", "volumeMounts"}
AUTH_OPTIONS = {"mode", "secretName", "enableK8sTokenAuth"}
RAY_JOB_SPEC = {"activeDeadlineSeconds", "backoffLimit", "rayClusterSpec", "submitterPodTemplate", "metadata",
                "clusterSelector", "submitterConfig", "managedBy", "deletionStrategy", "entrypoint", "runtimeEnvYAML",
                "jobId", "submissionMode", "entrypointResources", "entrypointNumCpus", "entrypointNumGpus",
                "ttlSecondsAfterFinished", "shutdownAfterJobFinishes", "suspend", "schedule"}


def raycluster() -> dict:
    (doc,) = load_yaml_docs(KUBERAY / "raycluster.yaml")
    return doc


def rayjob() -> dict:
    (doc,) = load_yaml_docs(KUBERAY / "rayjob.yaml")
    return doc


def cluster_specs() -> list[tuple[str, dict]]:
    return [("raycluster.yaml", raycluster()["spec"]), ("rayjob.yaml", rayjob()["spec"]["rayClusterSpec"])]


def mlflow_docs() -> list[dict]:
    return load_yaml_docs(DEPLOY / "mlflow" / "kubernetes.yaml")


def service_port(name: str, docs: list[dict]) -> int:
    svc = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == name)
    return svc["spec"]["ports"][0]["port"]


def test_kinds_and_api_version():
    assert raycluster()["apiVersion"] == "ray.io/v1" and raycluster()["kind"] == "RayCluster"
    assert rayjob()["apiVersion"] == "ray.io/v1" and rayjob()["kind"] == "RayJob"
    assert set(rayjob()["spec"]) <= RAY_JOB_SPEC, set(rayjob()["spec"]) - RAY_JOB_SPEC


@pytest.mark.parametrize("name,spec", cluster_specs(), ids=lambda x: x if isinstance(x, str) else "")
def test_cluster_spec_uses_only_crd_fields_and_starts_ray_with_valid_params(name, spec):
    assert set(spec) <= RAY_CLUSTER_SPEC, set(spec) - RAY_CLUSTER_SPEC
    assert set(spec["autoscalerOptions"]) <= AUTOSCALER_OPTIONS
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["authOptions"] == {"mode": "token"} and set(spec["authOptions"]) <= AUTH_OPTIONS
    head = spec["headGroupSpec"]
    assert set(head) <= HEAD_GROUP_SPEC and {"rayStartParams", "template"} <= set(head)
    assert head.get("serviceType", "ClusterIP") == "ClusterIP", "the dashboard is reached by port-forward, never exposed"
    groups = spec["workerGroupSpecs"]
    assert groups and len({g["groupName"] for g in groups}) == len(groups)
    for group in [head, *groups]:
        params = group["rayStartParams"]
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items()), "map[string]string"
        command, parsed = parse_ray_cli(["start", *(f"--{k}={v}" for k, v in params.items())])  # KubeRay's own rendering
        assert command == "start"
        pod = group["template"]["spec"]
        assert containers(pod) and all(c.get("name") and c.get("image") for c in containers(pod))
    assert parse_ray_cli(["start", *(f"--{k}={v}" for k, v in head["rayStartParams"].items())])[1]["num_cpus"] == 0


@pytest.mark.parametrize("name,spec", cluster_specs(), ids=lambda x: x if isinstance(x, str) else "")
def test_gpu_worker_group_autoscales_and_asks_kubernetes_for_its_gpus(name, spec):
    gpu_groups = [g for g in spec["workerGroupSpecs"] if "num-gpus" in g["rayStartParams"]]
    assert gpu_groups
    for g in gpu_groups:
        assert isinstance(g["minReplicas"], int) and isinstance(g["maxReplicas"], int)
        assert 0 <= g["minReplicas"] <= g.get("replicas", 0) <= g["maxReplicas"] and g["maxReplicas"] >= 1
        gpus = float(g["rayStartParams"]["num-gpus"])
        (container,) = g["template"]["spec"]["containers"]
        limits, requests = container["resources"]["limits"], container["resources"].get("requests", {})
        assert float(limits["nvidia.com/gpu"]) == gpus >= 1
        assert requests.get("nvidia.com/gpu", limits["nvidia.com/gpu"]) == limits["nvidia.com/gpu"]
        assert any(t.get("key") == "nvidia.com/gpu" for t in g["template"]["spec"].get("tolerations", []))
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in head["resources"].get("limits", {})


@pytest.mark.parametrize("name,spec", cluster_specs(), ids=lambda x: x if isinstance(x, str) else "")
def test_every_ray_container_runs_the_deploy_image_of_the_dockerfiles_ray(name, spec):
    ray_version = dockerfile_args(DEPLOY / "Dockerfile")["RAY_VERSION"]
    pods = [spec["headGroupSpec"]["template"]["spec"]] + [g["template"]["spec"] for g in spec["workerGroupSpecs"]]
    images = {c["image"] for pod in pods for c in containers(pod)}
    assert len(images) == 1, images
    (image,) = images
    assert "ray-unlearn" in image and image.endswith("-gpu")
    assert str(ray_image_version(image)) == ray_version == spec["rayVersion"]


@pytest.mark.parametrize("name,spec", cluster_specs(), ids=lambda x: x if isinstance(x, str) else "")
def test_pods_share_the_cache_volume_and_take_credentials_only_from_secrets(name, spec):
    (pvc,) = load_yaml_docs(KUBERAY / "shared-storage.yaml")
    assert pvc["kind"] == "PersistentVolumeClaim" and "ReadWriteMany" in pvc["spec"]["accessModes"]
    pods = [spec["headGroupSpec"]["template"]["spec"]] + [g["template"]["spec"] for g in spec["workerGroupSpecs"]]
    for pod in pods:
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
        for c in containers(pod):
            env = {e["name"]: e for e in c["env"]}
            cache = env["RAY_UNLEARN_CACHE"]["value"]
            mount = next(m for m in c["volumeMounts"] if cache.startswith(m["mountPath"] + "/"))
            assert claims[mount["name"]] == pvc["metadata"]["name"]
            for e in c["env"]:
                if any(s in e["name"] for s in ("PASSWORD", "SECRET", "TOKEN", "ACCESS_KEY")):
                    assert "value" not in e and "secretKeyRef" in e["valueFrom"], e["name"]
    created = readme_created_secrets()
    for item in walk(spec):
        if isinstance(item, dict) and isinstance(item.get("secretKeyRef"), dict):
            ref = item["secretKeyRef"]
            assert ref["name"] in created or ref.get("optional") is True, f"Secret {ref['name']} is neither created in the README nor optional"
    assert secret_refs(spec)


def test_rayjob_runs_on_exactly_the_raycluster_spec_and_cleans_up():
    spec = rayjob()["spec"]
    assert spec["rayClusterSpec"] == raycluster()["spec"]
    assert "clusterSelector" not in spec
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] >= 0
    assert spec.get("submissionMode", "K8sJobMode") in ("K8sJobMode", "HTTPMode")
    assert isinstance(spec["entrypointNumGpus"], (int, float)) and 0 < spec["entrypointNumGpus"] <= 1
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    workdir = next(rest for w, rest in dockerfile_instructions(DEPLOY / "Dockerfile") if w == "WORKDIR")
    assert runtime_env == {"working_dir": workdir}, "the image's checkout, where search_spaces/ lives"


def test_rayjob_entrypoint_is_a_real_ray_unlearn_tune_invocation():
    from ray_unlearn.commands import load

    spec = rayjob()["spec"]
    words = shlex.split(spec["entrypoint"])
    assert words[0] == "ray-unlearn"
    args = parse_ray_unlearn(words)
    assert args.command == "tune" and args.address == "auto"
    config = REPO / args.config
    assert args.config.startswith("search_spaces/") and config.is_file()
    from ray_unlearn.config import load_experiment

    load_experiment(config)  # the file itself, then with the entrypoint's overrides
    exp = load(args)
    assert exp.data.dataset == "cifar10" and exp.model.arch == "resnet18"
    assert args.num_samples == 256

    docs = mlflow_docs()
    uri = urlparse(args.tracking_uri)
    assert uri.scheme == "http" and uri.port == service_port(uri.hostname, docs)
    storage = urlparse(args.storage)
    assert storage.scheme == "s3" and storage.netloc == "ray-results"
    endpoint = urlparse(parse_qs(storage.query)["endpoint_override"][0])
    assert endpoint.port == service_port(endpoint.hostname, docs)
    buckets_job = next(d for d in docs if d["kind"] == "Job")
    assert "local/ray-results" in buckets_job["spec"]["template"]["spec"]["containers"][0]["args"][0]

    cluster = spec["rayClusterSpec"]
    (worker,) = cluster["workerGroupSpecs"]
    env = {e["name"]: e.get("value") for e in cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]}
    assert args.cache_dir == env["RAY_UNLEARN_CACHE"] and args.data_dir.startswith("/mnt/shared/")
    gpus_per_pod = float(worker["rayStartParams"]["num-gpus"])
    per_gpu = gpus_per_pod / exp.tune.resources.gpu
    assert per_gpu == 4, "four trials packed per GPU"
    assert exp.tune.max_concurrent == worker["maxReplicas"] * per_gpu, "set explicitly: the cluster starts without GPUs"
    assert spec["entrypointNumGpus"] + exp.tune.resources.gpu <= gpus_per_pod
