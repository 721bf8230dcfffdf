"""Readers for the deployment files (deploy/, cluster.yaml) and the real parsers
that check them: Ray's and MLflow's click command lines, the package's own CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any, Iterator

import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CLUSTER_YAML = REPO / "cluster.yaml"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_yaml_docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def ray_requirement() -> Requirement:
    """The `ray[...]` requirement of the package's dependencies in pyproject.toml."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    return next(r for r in reqs if r.name == "ray")


# --- Dockerfile ---------------------------------------------------------------------

def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, `\\` continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, f"{path}: a line continuation runs off the end"
    return out


def _substitute(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m.group(1) or m.group(2), m.group(0)), text)


def dockerfile_base_image(path: Path) -> str:
    """The FROM image with the ARG defaults declared before it substituted, as docker does."""
    args: dict[str, str] = {}
    for word, rest in dockerfile_instructions(path):
        if word == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            args[key.strip()] = value.strip().strip('"')
        if word == "FROM":
            return _substitute(rest.split()[0], args)
    raise AssertionError(f"{path}: no FROM")


def dockerfile_args(path: Path) -> dict[str, str]:
    return {k.strip(): v.strip().strip('"') for w, r in dockerfile_instructions(path) if w == "ARG" and "=" in r
            for k, _, v in [r.partition("=")]}


def split_image(image: str) -> tuple[str, str]:
    repo, _, tag = image.rpartition(":")
    assert repo and "/" not in tag, f"image {image!r} has no tag"
    return repo, tag


def ray_image_version(image: str) -> Version:
    """`rayproject/ray:2.60.0-py311-gpu` -> 2.60.0 (also for images tagged ...-ray2.60.0-...)."""
    _, tag = split_image(image)
    m = re.search(r"ray(\d+\.\d+\.\d+)", tag) or re.match(r"^(\d+\.\d+\.\d+)-", tag)
    assert m, f"no Ray version in the tag of {image!r}"
    return Version(m.group(1))


# --- .dockerignore (Docker's rules: Go filepath.Match plus `**`, last match wins) --------

def _ignore_regex(pattern: str) -> re.Pattern:
    pattern = pattern.strip().strip("/")
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def dockerignore_excludes(ignore_file: Path, path: str) -> bool:
    """Whether a context-relative path is left out of the build context."""
    rules = []
    for line in ignore_file.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        rules.append((negate, _ignore_regex(line.lstrip("!"))))
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]  # a dir excluded excludes its contents
    excluded = False
    for prefix in prefixes:
        for negate, rx in rules:
            if rx.match(prefix):
                excluded = not negate
        if excluded:
            return True
    return excluded


# --- command lines --------------------------------------------------------------------

def parse_ray_cli(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse `ray ARGS...` with Ray's own click CLI, without running it. Returns (command, params)."""
    import click
    from ray.scripts.scripts import cli

    cmd, name, args = cli, "ray", list(argv)
    path = []
    while isinstance(cmd, click.Group):
        assert args, f"`ray {' '.join(path)}` needs a subcommand"
        sub = args.pop(0)
        nxt = cmd.get_command(click.Context(cmd), sub)
        assert nxt is not None, f"`ray {' '.join(path + [sub])}`: no such command"
        cmd, name = nxt, sub
        path.append(sub)
    ctx = cmd.make_context(name, args)
    return " ".join(path), dict(ctx.params)


def parse_ray_start(command: str) -> dict[str, Any]:
    """The params of the `ray start` inside a shell line like `ulimit ...; X=1 ray start --head ...`."""
    for part in command.split(";"):
        words = shlex.split(part)
        while words and re.match(r"^\w+=", words[0]):
            words.pop(0)
        if words[:2] == ["ray", "start"]:
            _, params = parse_ray_cli(words[1:])
            return params
    raise AssertionError(f"no `ray start` in {command!r}")


def env_prefix(command: str) -> dict[str, str]:
    """VAR=value assignments in front of `ray start` in a shell line."""
    for part in command.split(";"):
        words = shlex.split(part)
        env = {}
        while words and re.match(r"^\w+=", words[0]):
            key, _, value = words.pop(0).partition("=")
            env[key] = value
        if words[:2] == ["ray", "start"]:
            return env
    return {}


def parse_mlflow_server(argv: list[str]) -> dict[str, Any]:
    """Parse `mlflow server ARGS...` with MLflow's own click CLI, without running it."""
    import click
    from mlflow.cli import cli

    assert argv[:2] == ["mlflow", "server"], argv
    cmd = cli.get_command(click.Context(cli), "server")
    return dict(cmd.make_context("server", list(argv[2:])).params)


def parse_ray_unlearn(argv: list[str]):
    """Parse a `ray-unlearn ...` command line with the package's own parser."""
    from ray_unlearn.cli import build_parser

    assert argv and argv[0] == "ray-unlearn", argv
    return build_parser().parse_args(argv[1:])


def readme_commands(path: Path) -> Iterator[list[str]]:
    """Shell commands of the ```bash blocks (continuations joined, comments dropped), split."""
    text = path.read_text()
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        pending = ""
        for raw in block.splitlines():
            line = raw.rstrip()
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line = pending + line
            pending = ""
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            words = []
            for token in lexer:  # the first simple command: up to a redirection, pipe, `&`, `;`
                if token and set(token) <= set("<>|&;()"):
                    break
                words.append(token)
            if words:
                yield words


def strip_env(words: list[str]) -> list[str]:
    words = list(words)
    while words and re.match(r"^\w+=", words[0]):
        words.pop(0)
    return words


def compose_interpolate(text: str, env: dict[str, str]) -> str:
    """Docker Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?error}`, `$$` interpolation."""

    def one(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        value = env.get(name)
        if op == ":-" and not value:
            return arg
        if op == ":?" and not value:
            raise KeyError(f"{name}: {arg}")
        if value is None:
            raise KeyError(name)
        return value

    text = text.replace("$$", "\0")
    text = re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, text)
    return text.replace("\0", "$")


def compose_variables(text: str) -> set[str]:
    return set(re.findall(r"(?<!\$)\$\{(\w+)", text))


def env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|PRIVATE", re.I)


def containers(pod_spec: dict) -> list[dict]:
    return list(pod_spec.get("containers", [])) + list(pod_spec.get("initContainers", []))


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def secret_refs(node: Any) -> set[str]:
    """Names of the Secrets that a manifest references (secretKeyRef, secretRef, secret volumes)."""
    names = set()
    for item in walk(node):
        if isinstance(item, dict):
            for key in ("secretKeyRef", "secretRef"):
                if isinstance(item.get(key), dict):
                    names.add(item[key]["name"])
            if isinstance(item.get("secret"), dict) and "secretName" in item["secret"]:
                names.add(item["secret"]["secretName"])
    return names


def readme_created_secrets() -> set[str]:
    return set(re.findall(r"kubectl create secret generic ([a-z0-9-]+)", (DEPLOY / "README.md").read_text()))

