"""Bring your own method, dataset and model (entry points), and your own trained original.

A plugin package is written by the test, with a real `*.dist-info/entry_points.txt` on PYTHONPATH,
so `importlib.metadata` finds it as it would an installed package; it runs end to end through
`ray-unlearn tune` on a real local Ray instance into a real MLflow server. A broken plugin is
reported by name and takes nothing else down."""

from __future__ import annotations

import os
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import torch

from .conftest import digits_config, run_cli
from .faults.helpers import assert_user_error, trial_runs, write_config

PLUGIN = {
    "myplug/__init__.py": "",
    "myplug/methods.py": '''
        import dataclasses
        import torch.nn.functional as F
        from ray_unlearn.hparams import hp
        from ray_unlearn.methods.base import Method
        from ray_unlearn.train import batches, fit, OptimSpec


        @dataclasses.dataclass(frozen=True)
        class ForgetThenRepairParams:
            lr: float = hp(0.01, gt=0.0, low=1e-3, high=5e-2, log=True, help="SGD learning rate")
            epochs: int = hp(2, ge=1, low=1, high=4, help="ascent + repair rounds")


        class ForgetThenRepair(Method):
            """One ascent pass over the forget set, then one pass over the retain set, per epoch."""
            name = "forget_then_repair"
            summary = "A plugin method: ascend on the forget set, then repair on the retain set."
            paper = "the ray_unlearn plugin example"
            Params = ForgetThenRepairParams

            def unlearn(self, model, data, hp, ctx):
                spec = OptimSpec(lr=hp.lr)
                for epoch in range(1, hp.epochs + 1):
                    fit(model, lambda: batches(data.forget, 64, ctx.generator), spec, epochs=1,
                        loss_fn=lambda m, x, y: -F.cross_entropy(m(x), y), grad_clip=10.0)
                    fit(model, lambda: batches(data.retain, 64, ctx.generator), spec, epochs=1)
                    if not ctx.report(epoch, model, loss=0.0):
                        break
                return model
    ''',
    "myplug/models.py": '''
        from torch import nn


        def tiny_mlp(input_shape, num_classes, hidden=32):
            n = 1
            for d in input_shape:
                n *= d
            return nn.Sequential(nn.Flatten(), nn.Linear(n, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
    ''',
    "myplug/data.py": '''
        import numpy as np
        import torch
        from sklearn.datasets import load_digits
        from ray_unlearn.data.base import RawDataset, TensorSet
        from ray_unlearn.data.info import DatasetInfo


        def load_half_digits(root=None, download=False):
            """The even-numbered half of scikit-learn's digits: somebody's own data."""
            d = load_digits()
            x = torch.from_numpy(d.images[::2] / 16.0).float().unsqueeze(1)
            return RawDataset(load_half_digits.info, train=TensorSet(x, torch.from_numpy(d.target[::2]).long()), test=None)


        load_half_digits.info = DatasetInfo("half_digits", num_classes=10, input_shape=(1, 8, 8), input_range=(0.0, 1.0))
    ''',
}
ENTRY_POINTS = """
[ray_unlearn.methods]
forget_then_repair = myplug.methods:ForgetThenRepair
broken_method = myplug.missing_module:Nothing

[ray_unlearn.datasets]
half_digits = myplug.data:load_half_digits

[ray_unlearn.models]
tiny_mlp = myplug.models:tiny_mlp
"""


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    for name, text in PLUGIN.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    info = root / "myplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: myplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return root


def plugin_env(path: Path) -> dict:
    return {"PYTHONPATH": os.pathsep.join([str(path), *filter(None, [os.environ.get("PYTHONPATH")])])}


def test_methods_lists_the_plugin_and_names_the_broken_one(plugin_path, tmp_path):
    out = run_cli("methods", cwd=tmp_path, env=plugin_env(plugin_path))
    assert out.returncode == 0, out.stderr
    assert "forget_then_repair" in out.stdout and "amun" in out.stdout, "plugins beside every built-in method"
    assert "broken_method" in out.stdout and "myplug.missing_module" in out.stdout and "ModuleNotFoundError" in out.stdout
    detail = run_cli("methods", "forget_then_repair", cwd=tmp_path, env=plugin_env(plugin_path))
    assert detail.returncode == 0 and "ascend on the forget set" in detail.stdout and "lr" in detail.stdout


def test_a_plugin_method_dataset_and_model_tune_end_to_end_into_mlflow(plugin_path, tmp_path, mlflow_server):
    name = f"plugin-{uuid.uuid4().hex[:8]}"
    raw = digits_config(
        experiment=name, method="forget_then_repair",
        data={"dataset": "half_digits", "forget": {"kind": "class", "classes": [0]}, "seed": 0},
        model={"arch": "tiny_mlp", "kwargs": {"hidden": 24}},
        train={"epochs": 15, "lr": 0.05, "batch_size": 64},
        search={"lr": {"float": [0.005, 0.05], "log": True}},
        tune={"num_samples": 2, "max_concurrent": 2, "resources": {"cpu": 1, "gpu": 0}},
    )
    path = write_config(tmp_path / "plugin.yaml", raw)
    out = run_cli("tune", str(path), "--tracking-uri", mlflow_server.url, "--cache-dir", str(tmp_path / "cache"),
                  "--storage", str(tmp_path / "ray_results"), cwd=tmp_path, env=plugin_env(plugin_path))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    runs = trial_runs(MlflowClient(mlflow_server.url), name)
    assert len(runs) == 2 and all(r.data.tags["ray_unlearn.method"] == "forget_then_repair" for r in runs)
    assert all("score" in r.data.metrics for r in runs), [r.data.tags.get("ray_unlearn.message") for r in runs]
    assert {r.data.tags["ray_unlearn.status"] for r in runs} <= {"ok", "collapsed"}, [r.data.tags for r in runs]
    assert any(r.data.tags["ray_unlearn.status"] == "ok" for r in runs), [r.data.tags.get("ray_unlearn.message") for r in runs]


def test_check_method_passes_a_plugin_and_a_builtin_and_fails_a_broken_method(plugin_path, monkeypatch):
    from ray_unlearn.methods.finetune import FineTune
    from ray_unlearn.testing import check_method

    monkeypatch.syspath_prepend(str(plugin_path))
    from myplug.methods import ForgetThenRepair

    check_method(ForgetThenRepair)
    check_method(FineTune)

    class EditsTheOriginal(FineTune):  # writes into the model it was given... and so into nothing: run copies it
        name = "edits_nothing"

        def unlearn(self, model, data, hp, ctx):
            ctx.report(1, model, loss=0.0)
            return model  # returns the copy unchanged

    with pytest.raises(AssertionError, match="changed nothing"):
        check_method(EditsTheOriginal)
    sys.modules.pop("myplug.methods", None)


def test_your_own_trained_original_is_measured_not_trained(tmp_path, digits_refs):
    from ray_unlearn.cache import Store
    from ray_unlearn.config import load_experiment
    from ray_unlearn.metrics import evaluate
    from ray_unlearn.references import prepare

    mine = digits_refs.model("retrain", torch.device("cpu"))  # any trained small_cnn will do
    torch.save(mine.state_dict(), tmp_path / "original.pt")
    path = write_config(tmp_path / "own.yaml", digits_config(model={"arch": "small_cnn", "checkpoint": "original.pt"}))
    exp = load_experiment(path)
    refs, trained = prepare(exp, Store(tmp_path / "cache"), torch.device("cpu"))
    assert trained == ["retrain"], "the original came from the file"
    assert all(torch.equal(v, refs.original_state[k]) for k, v in mine.state_dict().items())
    expected = evaluate(mine.eval(), refs.splits, exp.data.seed, asr=True)
    for key in ("forget_acc", "retain_acc", "val_acc", "test_acc", "mia", "test_mia"):
        assert refs.original_metrics[key] == pytest.approx(expected[key]), key


def test_a_checkpoint_of_another_architecture_is_one_clear_error_nothing_trained(tmp_path, digits_refs):
    torch.save(torch.nn.Linear(64, 10).state_dict(), tmp_path / "wrong.pt")
    raw = digits_config(model={"arch": "small_cnn", "checkpoint": "wrong.pt"})
    path = write_config(tmp_path / "wrong.yaml", raw)
    cache = tmp_path / "cache"
    out = run_cli("prepare", str(path), "--cache-dir", str(cache), cwd=tmp_path)
    line = assert_user_error(out, "model.checkpoint", "wrong.pt does not fit model.arch")
    assert "is missing from the file" in line or "shape" in line
    assert not cache.exists() or not [p for p in cache.iterdir() if not p.name.startswith(".")]
    (tmp_path / "junk.pt").write_bytes(b"not a weights file")
    out = run_cli("run", str(write_config(tmp_path / "junk.yaml", digits_config(model={"arch": "small_cnn", "checkpoint": "junk.pt"}))),
                  "--cache-dir", str(cache), "--no-track", cwd=tmp_path)
    assert_user_error(out, "model.checkpoint", "junk.pt", "not a weights file")
    assert not cache.exists() or not [p for p in cache.iterdir() if not p.name.startswith(".")]


def test_torchvision_models_by_name_with_a_small_image_stem():
    from ray_unlearn.models import build_model

    model = build_model("torchvision/resnet18", (1, 8, 8), 10, mix_layer="layer3")
    assert model.conv1.in_channels == 1 and model.conv1.stride == (1, 1) and isinstance(model.maxpool, torch.nn.Identity)
    x = torch.rand(2, 1, 8, 8)
    assert model(x).shape == (2, 10)
    assert model.mix_features(x).shape == (2, 256, 2, 2), "layer3's output, as model.mix_layer names it"
