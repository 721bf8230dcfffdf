"""Import rules of ARCHITECTURE.md and docs/design.md#layers: the plain-PyTorch layers never import ray, optuna or
mlflow; only the search package imports ray, only the tracking package imports mlflow; imports point down (no
circle); tasks never import each other and are reached through their registry only; validating a
config imports no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from ray_unlearn import module_graph

PACKAGE = Path(__file__).resolve().parents[1] / "ray_unlearn"
PLAIN = ["methods", "metrics", "data", "models", "i2i", "tasks", "train.py", "device.py", "registry.py", "cache.py", "references.py", "trial.py",
         "config", "schema.py", "hparams.py", "errors.py", "objective.py"]
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


def layer(path: Path) -> str:
    """The top-level module or package of ray_unlearn that `path` belongs to (`tracking` for tracking/sweep.py)."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def test_only_search_imports_ray_tune_and_only_tracking_imports_mlflow():
    for path in sorted(PACKAGE.rglob("*.py")):
        mods = imported_modules(path)
        if layer(path) != "search":
            assert not {m for m in mods if m.split(".")[0] == "ray"}, f"{path.name} imports ray"
        if layer(path) != "tracking":
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


# ---------------------------------------------------------------- the module graph: no circles, tasks apart

TASK_AGNOSTIC = ["config", "objective.py", "trial.py", "references.py", "search", "tracking", "workflow.py",
                 "commands.py", "registry.py"]


def import_graph() -> dict[str, set[str]]:
    return module_graph.import_graph(PACKAGE)


def test_the_graph_helpers_on_a_hand_made_graph():
    # a <-> b is a circle; c imports a; d imports c: chain d -> c -> {a, b}: three floors
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}, "d": {"c"}, "e": set()}
    assert module_graph.cycles(graph) == [["a", "b"]]
    assert module_graph.floors(graph) == 3
    assert module_graph.cycles({"x": {"y"}, "y": set()}) == [] and module_graph.floors({"x": {"y"}, "y": set()}) == 2


def test_the_package_has_no_import_circle():
    assert module_graph.cycles(import_graph()) == []


def task_packages() -> list[str]:
    return sorted(p.name for p in (PACKAGE / "tasks").iterdir() if (p / "__init__.py").exists())


def test_tasks_never_import_each_other():
    graph = import_graph()
    tasks = task_packages()
    assert {"classification", "i2i"} <= set(tasks)
    for task in tasks:
        own = f"ray_unlearn.tasks.{task}"
        for module, targets in graph.items():
            if module == own or module.startswith(own + "."):
                others = {t for t in targets if any(t == f"ray_unlearn.tasks.{o}" or t.startswith(f"ray_unlearn.tasks.{o}.")
                                                    for o in tasks if o != task)}
                assert not others, f"{module} imports {sorted(others)}"


def test_every_task_is_reached_through_the_registry_only():
    """Outside its own folder and the registry (tasks/__init__), nothing imports a task's implementation."""
    graph = import_graph()
    impls = tuple(f"ray_unlearn.tasks.{t}" for t in task_packages())
    for module, targets in graph.items():
        if module.startswith(impls):
            continue
        bad = {t for t in targets if t.startswith(impls)}
        assert not bad, f"{module} imports {sorted(bad)}: ask tasks.get_task(exp.task)"


@pytest.mark.parametrize("entry", TASK_AGNOSTIC)
def test_task_agnostic_modules_neither_branch_on_nor_key_tables_by_a_task_name(entry):
    from ray_unlearn.tasks import TASKS

    for path in files(entry):
        where = path.relative_to(PACKAGE)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                names = [c.value for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
                assert not set(names) & set(TASKS), f"{where}:{node.lineno}: compares with a task name {names}"
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                assert not keys & set(TASKS), f"{where}:{node.lineno}: a table keyed by task name {sorted(keys & set(TASKS))}"


def test_validating_a_config_imports_no_torch():
    """docs/design.md#layers: config knows no torch; methods, hyperparameters and ranges come from torch-free declarations."""
    spaces = PACKAGE.parent / "search_spaces"
    code = (
        "import sys; from ray_unlearn.config import load_experiment; "
        f"[load_experiment(p) for p in {[str(p) for p in sorted(spaces.glob('*.yaml'))]!r}]; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'ray', 'optuna', 'mlflow')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("command", ["run", "tune", "prepare"])
def test_a_bad_config_is_answered_without_importing_torch(tmp_path, command):
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment: x\nmethod: amun\nsearch:\n  lr: {float: [0.1, 0.01]}\n")
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "ray_unlearn.cli", command, str(bad)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2
    assert "search.lr.float: low 0.1 is above high 0.01" in out.stderr
    loaded = [line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")]
    assert not [m for m in loaded if m.split(".")[0] == "torch"]
