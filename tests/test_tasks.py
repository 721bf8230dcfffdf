"""A new task is one folder and one registry line: a toy task written here, outside the package,
registered with one line, runs through `ray-unlearn run` and `ray-unlearn methods` untouched."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

TOY_INIT = '''
"""task: toy - forget a class from a nearest-centroid classifier. No torch here: config reads it."""

import dataclasses

from ray_unlearn.errors import ConfigError
from ray_unlearn.hparams import hp
from ray_unlearn.methods.entry import MethodEntry
from ray_unlearn.tasks.base import Metric, Task


@dataclasses.dataclass(frozen=True)
class ShrinkParams:
    distance: float = hp(100.0, ge=0.0, low=1.0, high=1000.0, log=True, help="how far the forget centroids move")


class ToyTask(Task):
    name = "toy"
    methods = {"toy_move": MethodEntry("toy_move", "toy", ShrinkParams, "toy_task.method:Move",
                                       "Move the forgotten classes' centroids away.", "none")}
    retained = ("toy_val_acc",)
    forget_gap = "toy_forget_gap"
    metrics = (Metric("toy_val_acc", "max"), Metric("toy_forget_acc", "min"), Metric("toy_forget_gap", "min"),
               Metric("mia_gap", "min"), Metric("avg_gap", "min"),
               # an objective term: this line is all it takes (objective.toy_error_weight)
               Metric("toy_val_error", "min", weight="toy_error_weight", help="weight of the validation error"))
    trial_columns = ("toy_val_acc", "toy_forget_acc")
    reference_columns = ("toy_val_acc", "toy_forget_acc")
    rank_columns = ("toy_val_acc", "toy_forget_acc", "mia_gap")

    def check_config(self, data, model, info):
        if model.arch != "centroids":
            raise ConfigError("model.arch", f"task toy fits nearest centroids: write arch: centroids, got {model.arch!r}",
                              value=model.arch)

    def reference_key(self, exp, splits):
        return "toy-ref"

    def prepare(self, exp, store, device, progress=None, splits=None, runner=None):
        from .run import prepare

        return prepare(exp, splits)

    def trial_setup(self, exp, refs, device):
        from .run import trial_setup

        return trial_setup(exp, refs)
'''

TOY_METHOD = '''
import torch
from torch import nn

from ray_unlearn.methods.base import Method

from . import ShrinkParams


class Centroids(nn.Module):
    def __init__(self, centroids):
        super().__init__()
        self.register_buffer("c", centroids)

    def forward(self, x):
        return -torch.cdist(x.flatten(1), self.c)


class Move(Method):
    name = "toy_move"
    task = "toy"
    summary = "Move the forgotten classes' centroids away."
    paper = "none"
    Params = ShrinkParams

    def unlearn(self, model, data, hp, ctx):
        for k in data.forget.y.unique():
            model.c[k] += hp.distance
        ctx.report(0, model)
        return model
'''

TOY_RUN = '''
import dataclasses
import math

import torch

from ray_unlearn.data import load_splits
from ray_unlearn.methods.base import UnlearnData
from ray_unlearn.objective import score
from ray_unlearn.tasks.base import TrialSetup

from .method import Centroids, Move


@dataclasses.dataclass
class ToyReferences:
    key: str
    splits: object
    original: Centroids
    original_metrics: dict
    retrain_metrics: dict


def fit(data, k):
    far = torch.full_like(data.x[0].flatten(), 1e6)
    return Centroids(torch.stack([data.x[data.y == c].flatten(1).mean(0) if (data.y == c).any() else far for c in range(k)]))


def measure(model, splits):
    acc = lambda d: 100.0 * (model(d.x).argmax(1) == d.y).float().mean().item()
    return {"toy_val_acc": acc(splits.val), "toy_forget_acc": acc(splits.forget)}


def prepare(exp, splits=None):
    splits = splits if splits is not None else load_splits(exp.data)
    k = splits.info.num_classes
    original, retrain = fit(splits.train, k), fit(splits.retain, k)
    return ToyReferences("toy-ref", splits, original, measure(original, splits), measure(retrain, splits)), ["original", "retrain"]


def trial_setup(exp, refs):
    splits = refs.splits

    def scored(model, with_test):
        m = measure(model, splits)
        m["toy_forget_gap"] = abs(m["toy_forget_acc"] - refs.retrain_metrics["toy_forget_acc"])
        m["toy_val_error"] = 100.0 - m["toy_val_acc"]
        m["mia_gap"] = 0.0
        m["avg_gap"] = (m["toy_forget_gap"] + abs(m["toy_val_acc"] - refs.retrain_metrics["toy_val_acc"])) / 2
        m["score"] = score(m, exp.objective)
        return m

    data = UnlearnData(forget=splits.forget, retain=splits.retain, num_classes=splits.info.num_classes, input_range=None)
    return TrialSetup(data=data, original=refs.original, evaluate=scored, collapse_key="toy_val_acc",
                      floor=100.0 / splits.info.num_classes, floor_what="chance", finite_keys=("toy_val_acc",))
'''

CONFIG = """
experiment: toy-digits
task: toy
data: {dataset: digits, forget: {kind: class, classes: [0]}}
model: {arch: %s}
method: toy_move
search:
  distance: {float: [1.0, 1000.0], log: true, start: 50.0}
objective: {forget_weight: 1.0}
"""

# the one registry line, in a driver that then runs the real command line
DRIVER = """
import sys
from ray_unlearn import tasks
tasks.TASKS["toy"] = "toy_task:ToyTask"
from ray_unlearn.cli import main
sys.exit(main(sys.argv[1:]))
"""


def write_toy_task(root: Path) -> Path:
    folder = root / "toy_task"
    folder.mkdir()
    for name, text in (("__init__.py", TOY_INIT), ("method.py", TOY_METHOD), ("run.py", TOY_RUN)):
        (folder / name).write_text(textwrap.dedent(text).lstrip())
    (root / "driver.py").write_text(DRIVER)
    return root


def run_driver(root: Path, *args: str) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, str(root / "driver.py"), *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_toy_task_in_one_folder_plus_one_registry_line_runs_end_to_end(tmp_path):
    root = write_toy_task(tmp_path)
    (root / "toy.yaml").write_text(CONFIG % "centroids")
    out = run_driver(root, "run", "toy.yaml", "--no-track", "--cache-dir", str(tmp_path / "cache"))
    assert out.returncode == 0, out.stderr
    assert "status: ok" in out.stdout
    header = out.stdout.splitlines()[0]
    assert "toy_val_acc" in header and "toy_forget_acc" in header
    row = next(line for line in out.stdout.splitlines() if line.startswith("toy_move"))
    columns = dict(zip(header.split(), row.split()))
    assert float(columns["toy_forget_acc"]) == 0.0  # digit 0 forgotten, as by the retrain model
    assert float(columns["score"]) == float(columns["toy_val_acc"])  # no forget gap, no MIA gap: score = retained

    listing = run_driver(root, "methods", "toy_move")
    assert listing.returncode == 0, listing.stderr
    assert "toy_move: Move the forgotten classes' centroids away." in listing.stdout and "distance" in listing.stdout


def test_an_objective_term_is_one_line_of_the_task_metric_table(tmp_path):
    root = write_toy_task(tmp_path)
    (root / "toy.yaml").write_text((CONFIG % "centroids").replace("objective: {forget_weight: 1.0}",
                                                                  "objective: {forget_weight: 1.0, toy_error_weight: 0.5}"))
    out = run_driver(root, "run", "toy.yaml", "--no-track", "--cache-dir", str(tmp_path / "cache"))
    assert out.returncode == 0, out.stderr
    header = out.stdout.splitlines()[0].split()
    row = next(line for line in out.stdout.splitlines() if line.startswith("toy_move"))
    columns = dict(zip(header, row.split()))
    val_acc = float(columns["toy_val_acc"])
    assert 50.0 < val_acc < 100.0  # the term is not zero
    assert abs(float(columns["score"]) - (val_acc - 0.5 * (100.0 - val_acc))) < 0.02  # printed to 2 decimals

    (root / "other.yaml").write_text("experiment: x\nmethod: finetune\nobjective: {toy_error_weight: 1.0}\n")
    out = run_driver(root, "run", "other.yaml", "--no-track")
    assert out.returncode == 2 and "objective.toy_error_weight" in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_the_toy_task_validates_its_own_model_and_methods(tmp_path):
    root = write_toy_task(tmp_path)
    (root / "bad_arch.yaml").write_text(CONFIG % "small_cnn")
    out = run_driver(root, "run", "bad_arch.yaml", "--no-track")
    assert out.returncode == 2 and "task toy fits nearest centroids" in out.stderr
    (root / "other_task.yaml").write_text((CONFIG % "centroids").replace("method: toy_move", "method: amun").replace(
        "search:\n  distance: {float: [1.0, 1000.0], log: true, start: 50.0}\n", ""))
    out = run_driver(root, "run", "other_task.yaml", "--no-track")
    assert out.returncode == 2 and "amun is a method for task: classification" in out.stderr and "toy_move" in out.stderr
