"""deploy/Dockerfile and its .dockerignore, read the way docker reads them."""

from __future__ import annotations

import shlex

import pytest
import tomllib

from .helpers import (
    DEPLOY,
    REPO,
    dockerfile_args,
    dockerfile_base_image,
    dockerfile_instructions,
    dockerignore_excludes,
    ray_image_version,
    ray_requirement,
    split_image,
)

DOCKERFILE = DEPLOY / "Dockerfile"
IGNORE = DEPLOY / "Dockerfile.dockerignore"  # BuildKit's per-Dockerfile ignore file; the context is the repo root


def test_base_image_is_rays_gpu_image_whose_ray_satisfies_pyproject():
    image = dockerfile_base_image(DOCKERFILE)
    repo, tag = split_image(image)
    assert repo == "rayproject/ray" and tag.endswith("-gpu"), image
    version = ray_image_version(image)
    req = ray_requirement()
    assert req.specifier.contains(version), f"{image}: Ray {version} is outside pyproject's {req}"
    py = tag.split("-")[1]
    assert py.startswith("py3"), tag


def test_the_package_is_copied_and_installed_with_ray_pinned_to_the_base_image():
    steps = dockerfile_instructions(DOCKERFILE)
    words = [w for w, _ in steps]
    assert words.count("FROM") == 1 and words.index("FROM") < words.index("RUN")
    copied = []
    for word, rest in steps:
        if word == "COPY":
            args = [a for a in shlex.split(rest) if not a.startswith("--")]
            copied += args[:-1]
    for src in copied:
        assert (REPO / src).exists(), f"COPY {src}: not in the repository"
        assert not dockerignore_excludes(IGNORE, src.rstrip("/")), f"COPY {src}: excluded from the build context"
    readme = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["readme"]
    assert {"pyproject.toml", readme, "ray_unlearn/", "search_spaces/"} <= set(copied), "what `pip install .` needs"
    run = " ".join(rest for word, rest in steps if word == "RUN")
    install = shlex.split(run.split("&&")[0])
    assert install[:2] == ["pip", "install"] and "." in install
    pin = next(a for a in install if a.startswith("ray["))
    assert pin.endswith("==${RAY_VERSION}") and dockerfile_args(DOCKERFILE)["RAY_VERSION"] == str(ray_image_version(dockerfile_base_image(DOCKERFILE)))
    workdir = [rest for word, rest in steps if word == "WORKDIR"]
    assert workdir == ["/home/ray/ray_unlearn"], "rayjob.yaml's working_dir"


@pytest.mark.parametrize("path", [
    "mlflow.db", "mlflow.db-journal", "mlruns/0/meta.yaml", "mlartifacts/1/a.txt", "ray_results/sweep/trial/result.json",
    "search_spaces/ray_results/x", ".ray_unlearn_cache/ref/meta.json", "best.yaml",
    "ray_unlearn/__pycache__/cli.cpython-311.pyc", ".pytest_cache/v/cache", ".hypothesis/examples/x",
    ".venv/bin/python", "venv/bin/python", "ray_unlearn.egg-info/PKG-INFO", ".git/HEAD", "deploy/mlflow/.env",
])
def test_dockerignore_leaves_run_outputs_caches_venvs_and_git_out(path):
    assert dockerignore_excludes(IGNORE, path), path


@pytest.mark.parametrize("path", ["pyproject.toml", "README.md", "ray_unlearn/cli.py", "ray_unlearn/methods/amun.py",
                                  "search_spaces/digits_amun.yaml"])
def test_dockerignore_keeps_the_package(path):
    assert not dockerignore_excludes(IGNORE, path), path
