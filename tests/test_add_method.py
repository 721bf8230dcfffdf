"""Adding a method touches three things: its declaration (a `method(...)` on its Params, as in
methods/params.py), its module (a `Method` subclass) and one YAML. A toy method written here, outside
the package, is then listed by `ray-unlearn methods`, validated by the config from its declaration,
run by `ray-unlearn run`, and held to the method contract by the one contract function."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

# 1. the declaration: torch-free, as methods/params.py holds the built-in ones
TOY_PARAMS = '''
import dataclasses

from ray_unlearn.hparams import hp
from ray_unlearn.methods.entry import method
from ray_unlearn.methods.params import SGDParams


@method("toy_smooth", task="classification", target="toy_method:SmoothFineTune",
        summary="Fine-tune on the retain set towards label-smoothed targets.", paper="none (a test's toy)",
        quick={"epochs": 1})
@dataclasses.dataclass(frozen=True)
class ToySmoothParams(SGDParams):
    lr: float = hp(0.05, gt=0.0, low=1e-3, high=0.3, log=True, help="SGD learning rate")
    epochs: int = hp(3, ge=1, low=1, high=10, help="passes over the retain set")
    smoothing: float = hp(0.1, ge=0.0, lt=1.0, low=0.0, high=0.5, help="label smoothing of the targets")
'''

# 2. the module: a Method subclass that names itself; everything else comes from the declaration
TOY_METHOD = '''
import torch.nn.functional as F

from ray_unlearn.methods.base import Method


class SmoothFineTune(Method):
    name = "toy_smooth"

    def unlearn(self, model, data, hp, ctx):
        def loss(model, x, y):
            return F.cross_entropy(model(x), y, label_smoothing=hp.smoothing)

        ctx.fit(model, data.retain, hp, augment=data.augment, loss_fn=loss)
        return model
'''

# 3. one YAML
TOY_YAML = """
experiment: toy-smooth
data: {dataset: digits, forget: {kind: class, classes: [0]}, seed: 0}
model: {arch: small_cnn}
train: {epochs: 4, lr: 0.05, batch_size: 64}
method: toy_smooth
search:
  smoothing: {float: [0.0, 0.5], start: %s}
objective: {retained: val_acc, mia_weight: 1.0, forget_weight: 1.0}
"""

# what stands for editing methods/params.py: the declaration is imported before the registry is built
DRIVER = """
import sys
import toy_params  # noqa: F401
from ray_unlearn.cli import main
sys.exit(main(sys.argv[1:]))
"""

CHECK = """
import toy_params  # noqa: F401
from ray_unlearn.registry import CATALOG
from ray_unlearn.testing import check_method
entry = CATALOG["toy_smooth"]
cls = entry.load()
assert (cls.task, cls.Params.__name__, cls.summary) == ("classification", "ToySmoothParams", entry.summary), cls
check_method(cls)
print("contract ok")
"""


def write_toy(root: Path, start: str = "0.2") -> Path:
    for name, text in (("toy_params.py", TOY_PARAMS), ("toy_method.py", TOY_METHOD), ("driver.py", DRIVER),
                       ("check.py", CHECK)):
        (root / name).write_text(textwrap.dedent(text).lstrip())
    (root / "toy.yaml").write_text(TOY_YAML % start)
    return root


def run(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=600)


def test_a_toy_method_from_its_declaration_module_and_yaml_is_listed_run_and_held_to_the_contract(tmp_path):
    root = write_toy(tmp_path)

    listing = run(root, "driver.py", "methods", "toy_smooth")
    assert listing.returncode == 0, listing.stderr
    assert "toy_smooth: Fine-tune on the retain set towards label-smoothed targets." in listing.stdout
    assert "smoothing" in listing.stdout and "label smoothing of the targets" in listing.stdout

    out = run(root, "driver.py", "run", "toy.yaml", "--no-track", "--cache-dir", str(tmp_path / "cache"))
    assert out.returncode == 0, out.stderr
    assert "status: ok" in out.stdout
    row = next(line for line in out.stdout.splitlines() if line.startswith("toy_smooth"))
    header = out.stdout.splitlines()[0].split()
    figures = dict(zip(header, row.split()))
    assert float(figures["forget_acc"]) < 100.0  # it fine-tuned without digit 0 (the original has it at ~100)

    contract = run(root, "check.py")
    assert contract.returncode == 0, contract.stderr
    assert "contract ok" in contract.stdout


def test_the_toy_declaration_bounds_what_its_yaml_may_say(tmp_path):
    root = write_toy(tmp_path, start="1.5")
    (root / "toy.yaml").write_text((root / "toy.yaml").read_text().replace("[0.0, 0.5]", "[0.0, 1.5]"))
    out = run(root, "driver.py", "run", "toy.yaml", "--no-track")
    assert out.returncode == 2, out.stderr
    assert "search.smoothing" in out.stderr and "Traceback" not in out.stderr
