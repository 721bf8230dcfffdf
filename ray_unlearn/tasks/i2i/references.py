"""`task: i2i` references and metrics, under the names the sweep uses.

The I2I metrics map onto the classification vocabulary where the meaning is
the same, so the objective, Tune, MLflow and `best` need no second code path:
`mia` = 100 x the audit attack's AUC (0.5 x 100 = the retrain behaviour),
`mia_gap` its distance to the retrain model's, `retained` a PSNR
(`val_psnr` by default), `forget_psnr_gap` the forget term and `avg_gap` the
mean |gap| over retain/forget/val PSNR and MIA.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ...cache import Store
from ...data import load_splits
from ...data.base import Splits
from ...device import place_model
from ...i2i.data import Backdoor
from ...i2i.metrics import evaluate_i2i
from ...i2i.models import build_autoencoder
from ...i2i.references import I2IRecipe, divergence_scale, i2i_reference_key, prepare_i2i

GAP_METRICS = ("retain_psnr", "forget_psnr", "val_psnr", "mia")
TEST_GAP_METRICS = ("retain_psnr", "forget_psnr", "test_psnr", "test_mia")


@dataclasses.dataclass
class I2IReferenceSet:
    """What every I2I trial needs; picklable (state dicts, not modules) for Ray's object store."""

    key: str
    splits: Splits  # D_f poisoned as the original was trained, if the backdoor audit is on
    original_state: dict[str, torch.Tensor]
    retrain_state: dict[str, torch.Tensor]
    original_metrics: dict[str, float]
    retrain_metrics: dict[str, float]
    backdoor: Backdoor | None
    poisoned_idx: torch.Tensor
    divergence_scale: float  # e on the validation split: KR's lambda = c * e
    arch: str = "autoencoder"
    augment: str = "none"

    def model(self, which: str, device: torch.device) -> nn.Module:
        model = build_autoencoder(tuple(self.splits.info.input_shape))
        model.load_state_dict(self.original_state if which == "original" else self.retrain_state)
        return place_model(model, device).eval()


def recipe_of(exp: Any) -> I2IRecipe:
    t = exp.train
    return I2IRecipe(epochs=t.epochs, lr=t.lr, batch_size=t.batch_size, seed=t.seed)


def backdoor_of(exp: Any) -> Backdoor | None:
    return Backdoor(fraction=exp.i2i.backdoor_fraction, seed=exp.data.seed) if exp.i2i.backdoor else None


def reference_key(exp: Any, splits: Splits) -> str:
    return i2i_reference_key(splits, recipe_of(exp), backdoor_of(exp))


def prepare_references(exp: Any, store: Store, device: torch.device, progress: Callable | None = None,
                       splits: Splits | None = None) -> tuple[I2IReferenceSet, list[str]]:
    splits = splits if splits is not None else load_splits(exp.data)
    recipe, backdoor = recipe_of(exp), backdoor_of(exp)
    key = i2i_reference_key(splits, recipe, backdoor)
    cached = store.get(key, ["original", "retrain"]) is not None
    refs = prepare_i2i(splits, recipe, device, backdoor, store, progress)
    seed = exp.data.seed
    split, idx = refs.splits, refs.poisoned_idx
    metrics = {name: evaluate(model, split, refs.original, seed=seed, backdoor=backdoor, poisoned_idx=idx, with_test=True)
               for name, model in (("original", refs.original), ("retrain", refs.retrain))}
    for name in metrics:
        metrics[name]["seconds"] = refs.seconds.get(name, float("nan"))
    state = {name: {k: v.detach().cpu() for k, v in m.state_dict().items()} for name, m in (("original", refs.original), ("retrain", refs.retrain))}
    result = I2IReferenceSet(
        key=key, splits=split.to("cpu"), original_state=state["original"], retrain_state=state["retrain"],
        original_metrics=metrics["original"], retrain_metrics=metrics["retrain"], backdoor=backdoor,
        poisoned_idx=idx.cpu(), divergence_scale=divergence_scale(refs.original, split.val),
    )
    return result, [] if cached else ["original", "retrain"]


def evaluate(model: nn.Module, splits: Splits, original: nn.Module, *, seed: int, backdoor: Backdoor | None,
             poisoned_idx: torch.Tensor, with_test: bool) -> dict[str, float]:
    """evaluate_i2i on validation (selection) and, if asked, test (reported) as the sweep names them."""
    out = evaluate_i2i(model, splits, original, seed=seed, heldout="val", backdoor=backdoor, poisoned_idx=poisoned_idx)
    out["mia"] = 100.0 * out["audit_auc"]
    if with_test:
        test = evaluate_i2i(model, splits, original, seed=seed, heldout="test", backdoor=backdoor, poisoned_idx=poisoned_idx)
        out.update({k: v for k, v in test.items() if k.startswith("test_")})
        out.update(test_audit_auc=test["audit_auc"], test_ood_auroc=test["ood_auroc"], test_mia=100.0 * test["audit_auc"])
        if "backdoor_success" in test:
            out["test_backdoor_success"] = test["backdoor_success"]
    return out


def gaps(m: Mapping[str, float], r: Mapping[str, float]) -> dict[str, float]:
    out = {
        "mia_gap": abs(m["mia"] - r["mia"]),
        "forget_psnr_gap": abs(m["forget_psnr"] - r["forget_psnr"]),
        "divergence_gap": abs(m["forget_divergence"] - r["forget_divergence"]),
        "avg_gap": math.fsum(abs(m[k] - r[k]) for k in GAP_METRICS) / len(GAP_METRICS),
    }
    if "test_mia" in m and "test_mia" in r:
        out["test_mia_gap"] = abs(m["test_mia"] - r["test_mia"])
        out["test_avg_gap"] = math.fsum(abs(m[k] - r[k]) for k in TEST_GAP_METRICS) / len(TEST_GAP_METRICS)
    return out
