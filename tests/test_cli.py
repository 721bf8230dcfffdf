"""The command line as a user meets it: help with examples, one-line errors, exit code 2."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import yaml

from .conftest import digits_config, run_cli

COMMANDS = ["prepare", "run", "tune", "best", "audit", "methods", "ui"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(command, tmp_path):
    out = run_cli(command, "--help", cwd=tmp_path)
    assert out.returncode == 0
    assert "examples:" in out.stdout and f"ray-unlearn {command}" in out.stdout


def test_console_script_is_installed(tmp_path):
    import subprocess

    script = Path(sys.executable).parent / "ray-unlearn"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "examples:" in out.stdout


BAD = [
    ({"method": "amunn"}, "method: unknown method 'amunn' (did you mean 'amun'?)"),
    ({"search": {"lr": {"float": [0.1, 0.01]}}}, "search.lr.float: low 0.1 is above high 0.01"),
    ({"train": {"epochs": "ten"}}, "train.epochs: must be an integer"),
]


@pytest.mark.parametrize("command,change,message", [(c, *b) for c, b in zip(["tune", "run", "prepare"], BAD)],
                         ids=["tune", "run", "prepare"])
def test_bad_config_is_one_clear_line_exit_2_and_nothing_created(tmp_path, command, change, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(digits_config(**change)))
    cache = tmp_path / "cache"
    out = run_cli(command, str(path), "--cache-dir", str(cache), cwd=tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, out.stderr
    assert message in lines[0] and str(path) in lines[0]
    assert not (tmp_path / "mlflow.db").exists(), "no MLflow store or run for a bad file"
    assert not cache.exists() or not any(cache.iterdir()), "nothing trained"


def test_tune_with_empty_search_is_a_clear_error(tmp_path):
    path = tmp_path / "nosearch.yaml"
    path.write_text(yaml.safe_dump(digits_config()))
    out = run_cli("tune", str(path), "--cache-dir", str(tmp_path / "cache"), cwd=tmp_path)
    assert out.returncode == 2 and "search: is empty" in out.stderr and "Traceback" not in out.stderr


def test_unreachable_tracking_server_fails_before_training(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(digits_config(method="finetune", search={"lr": {"float": [0.001, 0.1]}})))
    cache = tmp_path / "cache"
    started = time.monotonic()
    out = run_cli("tune", str(path), "--cache-dir", str(cache), "--tracking-uri", "http://127.0.0.1:9", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "the MLflow tracking server http://127.0.0.1:9 does not answer" in out.stderr and "Traceback" not in out.stderr
    assert "within 10 s" in out.stderr  # the probe's own deadline, not MLflow's minutes of retries (~250 s)
    assert time.monotonic() - started < 150, "a dead server is told in seconds (a margin for a loaded machine's imports)"
    assert not cache.exists() or not any(cache.iterdir())


def test_methods_lists_every_method_with_ranges(tmp_path):
    from ray_unlearn.registry import METHODS

    out = run_cli("methods", cwd=tmp_path)
    assert out.returncode == 0
    for name in METHODS:
        assert name in out.stdout
    one = run_cli("methods", "amun", cwd=tmp_path)
    assert "paper:" in one.stdout and "epsilon" in one.stdout and "[0.005, 0.5] log" in one.stdout
    bad = run_cli("methods", "amn", cwd=tmp_path)
    assert bad.returncode == 2 and "did you mean 'amun'" in bad.stderr


@pytest.mark.parametrize(
    "argv,env,want",
    [
        (["--storage", "{tmp}/sweeps"], {}, "{tmp}/sweeps/cache"),  # a shared storage path holds the references too
        (["--storage", "{tmp}/sweeps", "--cache-dir", "{tmp}/c"], {}, "{tmp}/c"),
        (["--storage", "{tmp}/sweeps"], {"RAY_UNLEARN_CACHE": "{tmp}/env"}, "{tmp}/env"),
        (["--storage", "s3://bucket/sweeps"], {}, "{home}/.cache/ray_unlearn"),  # an object store cannot
        ([], {}, "{home}/.cache/ray_unlearn"),
    ],
)
def test_where_tune_keeps_the_reference_cache(tmp_path, monkeypatch, argv, env, want):
    from ray_unlearn.cli import build_parser
    from ray_unlearn.commands import _store

    fill = {"tmp": str(tmp_path), "home": str(tmp_path / "home")}
    monkeypatch.setenv("HOME", fill["home"])
    monkeypatch.delenv("RAY_UNLEARN_CACHE", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value.format(**fill))
    args = build_parser().parse_args(["tune", "exp.yaml", *(a.format(**fill) for a in argv)])
    assert Path(_store(args).root) == Path(want.format(**fill))
