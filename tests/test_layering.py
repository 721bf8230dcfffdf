"""Import rules of DESIGN.md: the plain-PyTorch layers never import ray, optuna or mlflow;
only search.py imports ray.tune, only tracking.py imports mlflow."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ray_unlearn"
PLAIN = ["methods", "metrics", "data", "models", "i2i", "train.py", "registry.py", "cache.py", "references.py", "trial.py",
         "config.py", "schema.py", "hparams.py", "errors.py", "objective.py"]
FORBIDDEN = ("ray", "optuna", "mlflow")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def files(entry: str) -> list[Path]:
    p = PACKAGE / entry
    return sorted(p.rglob("*.py")) if p.is_dir() else [p]


@pytest.mark.parametrize("entry", PLAIN)
def test_plain_layers_never_import_ray_optuna_or_mlflow(entry):
    for path in files(entry):
        bad = {m for m in imported_modules(path) if m.split(".")[0] in FORBIDDEN}
        assert not bad, f"{path.relative_to(PACKAGE.parent)} imports {sorted(bad)}"


def test_only_search_imports_ray_tune_and_only_tracking_imports_mlflow():
    for path in sorted(PACKAGE.rglob("*.py")):
        mods = imported_modules(path)
        if path.name != "search.py":
            assert not {m for m in mods if m.split(".")[0] == "ray"}, f"{path.name} imports ray"
        if path.name != "tracking.py":
            assert not {m for m in mods if m.split(".")[0] == "mlflow"}, path


def test_importing_the_plain_layers_loads_none_of_them():
    code = (
        "import sys; import ray_unlearn.methods, ray_unlearn.metrics, ray_unlearn.data, ray_unlearn.models, "
        "ray_unlearn.train, ray_unlearn.trial, ray_unlearn.config; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'optuna', 'mlflow')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_yaml_and_torch_load_are_only_used_safely():
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = getattr(node.func.value, "id", None)
                if owner == "torch" and node.func.attr == "load":
                    kw = {k.arg: k.value for k in node.keywords}
                    assert "weights_only" in kw and getattr(kw["weights_only"], "value", None) is True, f"{path}: torch.load without weights_only=True"
                if owner == "yaml" and node.func.attr in ("load", "load_all", "unsafe_load", "full_load"):
                    kw = {k.arg: k.value for k in node.keywords}
                    loader = kw.get("Loader")
                    assert loader is not None and getattr(loader, "id", "").startswith("_Safe"), f"{path}: yaml.{node.func.attr} without a safe loader"
