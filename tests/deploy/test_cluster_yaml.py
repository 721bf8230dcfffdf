"""cluster.yaml against Ray's own cluster-config validator and Ray's `ray start` parser."""

from __future__ import annotations

import copy
import shlex

import pytest
from ray.autoscaler._private.util import prepare_config, validate_config

from .helpers import CLUSTER_YAML, DEPLOY, REPO, env_prefix, load_yaml, parse_ray_start, ray_image_version, ray_requirement


@pytest.fixture()
def config() -> dict:
    return load_yaml(CLUSTER_YAML)


def test_ray_validator_accepts_cluster_yaml_as_written_and_as_ray_up_prepares_it(config):
    validate_config(copy.deepcopy(config))  # the file alone
    prepared = prepare_config(copy.deepcopy(config))  # what `ray up` validates: merged with the provider's defaults
    validate_config(prepared)
    assert prepared["head_node_type"] == config["head_node_type"]
    assert set(prepared["available_node_types"]) == set(config["available_node_types"])


def _without_head_node_type(c: dict) -> None:
    del c["head_node_type"]


def _head_node_type_names_a_missing_type(c: dict) -> None:
    c["head_node_type"] = "ray.head.missing"


def _head_type_removed(c: dict) -> None:
    del c["available_node_types"][c["head_node_type"]]


def _fractional_gpu_resource(c: dict) -> None:
    c["available_node_types"]["ray.worker.gpu"]["resources"]["GPU"] = 0.5


def _unknown_top_level_key(c: dict) -> None:
    c["idle_timeout"] = 5  # a typo of idle_timeout_minutes


@pytest.mark.parametrize("breakage", [_without_head_node_type, _head_node_type_names_a_missing_type, _head_type_removed,
                                      _fractional_gpu_resource, _unknown_top_level_key])
def test_ray_validator_rejects_a_broken_copy(config, breakage):
    broken = copy.deepcopy(config)
    breakage(broken)
    with pytest.raises(Exception) as err:  # ValueError or jsonschema.ValidationError, as Ray raises them
        validate_config(broken)
    assert type(err.value).__name__ in ("ValueError", "ValidationError"), err.value


@pytest.mark.parametrize("breakage", [_head_node_type_names_a_missing_type, _head_type_removed])
def test_ray_up_path_rejects_a_head_node_type_missing_from_the_node_types(config, breakage):
    broken = copy.deepcopy(config)
    breakage(broken)
    with pytest.raises(ValueError, match="head_node_type"):
        validate_config(prepare_config(broken))


def test_gpu_worker_type_autoscales_from_zero_and_the_head_runs_no_trials(config):
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    workers = {name: t for name, t in types.items() if name != config["head_node_type"]}
    gpu = [t for t in workers.values() if t["resources"].get("GPU", 0) >= 1]
    assert gpu, "a GPU worker type"
    for t in gpu:
        assert 0 == t["min_workers"] < t["max_workers"] <= config["max_workers"]
    assert head["resources"].get("CPU") == 0 and not head["resources"].get("GPU")
    assert 0 < config["idle_timeout_minutes"] and config["upscaling_speed"] > 0


def test_image_is_rays_gpu_image_in_the_package_ray_range_and_matches_the_dockerfile(config):
    from .helpers import dockerfile_base_image

    image = config["docker"]["image"]
    assert image.startswith("rayproject/ray:") and image.endswith("-gpu")
    version = ray_image_version(image)
    assert ray_requirement().specifier.contains(version), f"{version} outside pyproject's {ray_requirement()}"
    assert image == dockerfile_base_image(DEPLOY / "Dockerfile")
    import ray

    assert str(version) == ray.__version__, "the image's Ray is the Ray that submits jobs to it"


def test_setup_installs_this_package_from_a_file_mount_and_pins_the_image_ray(config):
    mounts = config["file_mounts"]
    repo_mount = next(remote for remote, local in mounts.items() if (REPO / local).resolve() == REPO)
    assert any((REPO / local).resolve() == REPO / "search_spaces" for local in mounts.values())
    for local in mounts.values():
        if not local.startswith("~"):
            assert (REPO / local).exists(), local
    words = [shlex.split(c) for c in config["setup_commands"]]
    install = next(w for w in words if w[:2] == ["pip", "install"])
    assert "-e" in install and install[install.index("-e") + 1] == repo_mount
    version = str(ray_image_version(config["docker"]["image"]))
    assert any(w.startswith("ray[") and w.endswith(f"=={version}") for w in install)


def test_run_outputs_never_sync_to_the_cluster(config):
    excluded = set(config["rsync_exclude"])
    assert {".git", "mlflow.db", "mlruns", "ray_results", "**/__pycache__", ".venv", "venv"} <= excluded


def test_start_commands_parse_with_ray_start_keep_token_auth_and_a_loopback_dashboard(config):
    head = parse_ray_start(config["head_start_ray_commands"][-1])
    assert head["head"] and head["dashboard_host"] == "127.0.0.1"
    assert head["autoscaling_config"] == "~/ray_bootstrap_config.yaml"
    worker = parse_ray_start(config["worker_start_ray_commands"][-1])
    assert worker["address"] == f"$RAY_HEAD_IP:{head['port']}"
    for cmd in (config["head_start_ray_commands"][-1], config["worker_start_ray_commands"][-1]):
        assert env_prefix(cmd).get("RAY_AUTH_MODE") == "token"
    assert "~/.ray/auth_token" in config["file_mounts"], "the same token on every node"


def test_readme_uses_rays_docker_mount_staging_path_for_the_mlflow_stack(config):
    from ray.autoscaler.sdk import get_docker_host_mount_location

    remote = next(r for r, local in config["file_mounts"].items() if (REPO / local).resolve() == DEPLOY / "mlflow")
    host_path = get_docker_host_mount_location(config["cluster_name"]) + "/" + remote.lstrip("/")
    assert f"cd {host_path} &&" in (DEPLOY / "README.md").read_text()
