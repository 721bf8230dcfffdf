"""`task: i2i` in the sweep: references, one trial and its metrics, under the names the sweep uses.

The I2I metrics map onto the classification vocabulary where the meaning is
the same, so the objective, Tune, MLflow and `best` need no second code path:
`mia` = 100 x the audit attack's AUC (0.5 x 100 = the retrain behaviour),
`mia_gap` its distance to the retrain model's, `retained` a PSNR
(`val_psnr` by default), `forget_psnr_gap` the forget term and `avg_gap` the
mean |gap| over retain/forget/val PSNR and MIA.
"""

from __future__ import annotations

import dataclasses
import io
import math
import time
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..cache import Store
from ..data import Splits, load_splits
from ..methods.base import Context, Memo, in_memory_memo
from ..train import place_model
from .data import Backdoor, I2IData
from .metrics import constant_fill_psnr, evaluate_i2i, reconstruct
from .models import build_autoencoder, corrupt
from .references import I2IRecipe, divergence_scale, i2i_reference_key, prepare_i2i

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


def run_i2i_trial(exp: Any, refs: I2IReferenceSet, sampled: Mapping[str, Any], *, seed: int, device: torch.device,
                  report: Callable | None = None, memo: Memo | None = None, budget_seconds: float | None = None) -> Any:
    """One I2I trial: the method on I2IData, metrics against the retrain model, a reconstruction grid."""
    from ..registry import get_method
    from ..objective import WORST_SCORE, score
    from ..trial import (STATUS_COLLAPSED, STATUS_DIVERGED, STATUS_OK, TrialCollapsed, TrialResult, check_finite,
                         collapse_message, epoch_reporter, stopped_collapsed, wrecked_message)

    method_name, _ = exp.resolve(sampled)
    method = get_method(method_name)
    hp = exp.method_params(sampled)
    splits = refs.splits.to(device)
    original, retrain = refs.model("original", device), refs.model("retrain", device)
    data = I2IData(forget=splits.forget, retain=splits.retain, divergence_scale=refs.divergence_scale)
    common = {"seed": exp.data.seed, "backdoor": refs.backdoor, "poisoned_idx": refs.poisoned_idx.to(device)}
    started = time.perf_counter()

    def scored(model: nn.Module, with_test: bool) -> dict[str, float]:
        m = evaluate(model, splits, original, with_test=with_test, **common)
        m.update(gaps(m, refs.retrain_metrics))
        m.update({f"retrain_{k}": v for k, v in refs.retrain_metrics.items()})
        m["score"] = score(m, exp.objective)
        return m

    floor = constant_fill_psnr(splits.val.x)
    on_epoch = epoch_reporter(exp, report, scored, started, lambda m: wrecked_message(m, "val_psnr", floor, "filling the block with the mean pixel"))
    ctx = Context(device=device, seed=seed, on_epoch=on_epoch, budget_seconds=budget_seconds, memo=memo or in_memory_memo())
    try:
        model = method.run(original, data, hp, ctx)
        check_finite(model)  # NaN weights can hide behind a finite last loss
    except FloatingPointError as err:
        return TrialResult({"score": WORST_SCORE}, STATUS_DIVERGED, f"{method_name} diverged: {err}", None, dataclasses.asdict(hp))
    except TrialCollapsed as stop:
        return stopped_collapsed(stop, hp, started)
    seconds = time.perf_counter() - started
    metrics = {**scored(model, with_test=True), **ctx.extras, "seconds": seconds}
    status, message = STATUS_OK, ctx.stopped_reason or ""
    if not all(math.isfinite(metrics[k]) for k in ("retain_psnr", "val_psnr")):
        status, metrics["score"] = STATUS_DIVERGED, WORST_SCORE
    if status == STATUS_OK and (reason := collapse_message(exp, metrics, refs.original_metrics, key="val_psnr", unit=" dB")):
        status, metrics["score"], message = STATUS_COLLAPSED, WORST_SCORE, reason
    figures = {"reconstructions.png": reconstruction_grid(original, retrain, model, splits)}
    return TrialResult(metrics, status, message, model, dataclasses.asdict(hp), figures)


def reconstruction_grid(original: nn.Module, retrain: nn.Module, unlearned: nn.Module, splits: Splits, n: int = 8) -> bytes:
    """PNG: masked input, original, retrain and unlearned outputs on forget (left) and retain (right) images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    forget, retain = splits.forget.x[:n], splits.retain.x[:n]
    x = torch.cat([forget, retain])
    rows = [("masked input", corrupt(x)[0]), ("original", reconstruct(original, x)),
            ("retrain", reconstruct(retrain, x)), ("unlearned", reconstruct(unlearned, x))]
    fig, axes = plt.subplots(len(rows), len(x), figsize=(len(x) * 0.8, len(rows) * 0.9), dpi=100)
    for r, (label, images) in enumerate(rows):
        for c in range(len(x)):
            ax = axes[r][c]
            image = images[c].detach().float().cpu()
            ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy() if image.shape[0] == 3 else image[0].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=7)
            if r == 0:
                ax.set_title("forget" if c < len(forget) else "retain", fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
