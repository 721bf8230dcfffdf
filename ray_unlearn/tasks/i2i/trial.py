"""One `task: i2i` trial: the method on I2IData, metrics against the retrain model, a reconstruction grid."""

from __future__ import annotations

import dataclasses
import io
import math
import time
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ...data.base import Splits
from ...i2i.data import I2IData
from ...i2i.metrics import constant_fill_psnr, reconstruct
from ...i2i.models import corrupt
from ...methods.base import Context, Memo, in_memory_memo
from ...objective import WORST_SCORE, score
from ...registry import get_method
from ..guards import check_finite, collapse_message, epoch_reporter, stopped_collapsed, wrecked_message
from ..outcome import STATUS_COLLAPSED, STATUS_DIVERGED, STATUS_OK, TrialCollapsed, TrialResult
from .references import I2IReferenceSet, evaluate, gaps


def run_i2i_trial(exp: Any, refs: I2IReferenceSet, sampled: Mapping[str, Any], *, seed: int, device: torch.device,
                  report: Callable | None = None, memo: Memo | None = None, budget_seconds: float | None = None) -> Any:
    """One I2I trial: the method on I2IData, metrics against the retrain model, a reconstruction grid."""
    method_name, _ = exp.resolve(sampled)
    method = get_method(method_name)  # built-in or plugin
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
