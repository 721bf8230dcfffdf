"""Every `ray ...` and `ray-unlearn ...` command of deploy/README.md goes through the real
parsers (Ray's click CLI, the package's argparse CLI and experiment loader)."""

from __future__ import annotations

import json

import pytest

from .helpers import DEPLOY, REPO, parse_ray_cli, parse_ray_unlearn, readme_commands, strip_env

README = DEPLOY / "README.md"


def commands(program: str) -> list[list[str]]:
    return [w for w in (strip_env(c) for c in readme_commands(README)) if w and w[0] == program]


def check_ray_unlearn(words: list[str]) -> None:
    from ray_unlearn.commands import load

    args = parse_ray_unlearn(words)
    if getattr(args, "config", None):
        assert (REPO / args.config).is_file(), args.config
        load(args)  # the YAML plus every --set: a ConfigError fails the test


def test_readme_covers_the_whole_lifecycle():
    ray = {" ".join(w[1:3]) if w[1] == "job" else w[1] for w in commands("ray")}
    assert {"get-auth-token", "up", "exec", "dashboard", "job submit", "job logs", "job list", "down"} <= ray
    assert {w[1] for w in commands("ray-unlearn")} >= {"best"}
    text = README.read_text()
    for needle in ("kubectl apply -f deploy/kuberay/raycluster.yaml", "kubectl create -f deploy/kuberay/rayjob.yaml",
                   "kubectl port-forward svc/ray-unlearn-head-svc 8265:8265", "kubectl port-forward svc/mlflow 5000:5000",
                   "docker compose --env-file", "RAY_AUTH_MODE=token", "--cache-dir", "RAY_UNLEARN_CACHE",
                   "--storage \"s3://", "--storage /mnt/shared"):
        assert needle in text, needle


@pytest.mark.parametrize("words", commands("ray"), ids=lambda w: " ".join(w)[:60])
def test_ray_commands_parse_with_rays_cli(words, monkeypatch):
    monkeypatch.chdir(REPO)
    command, params = parse_ray_cli(words[1:])
    if command == "job submit":
        assert params["address"] == "http://127.0.0.1:8265"
        assert params["working_dir"] == "."
        assert ".git" in json.loads(params["runtime_env_json"])["excludes"], "never upload .git"
        entrypoint = list(params["entrypoint"])
        assert entrypoint[0] == "ray-unlearn"
        check_ray_unlearn(entrypoint)
    if command in ("up", "down", "dashboard", "exec"):
        assert params["cluster_config_file"] == "cluster.yaml"


@pytest.mark.parametrize("words", commands("ray-unlearn"), ids=lambda w: " ".join(w)[:60])
def test_ray_unlearn_commands_parse_with_the_package_cli(words):
    check_ray_unlearn(words)
