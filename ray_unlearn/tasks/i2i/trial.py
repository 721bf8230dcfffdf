"""A `task: i2i` trial's part (the skeleton is ray_unlearn.trial.run_trial): I2IData, its metrics, a reconstruction grid."""

from __future__ import annotations

import io
from typing import Any

import torch
from torch import nn

from ...data.base import Splits
from ...i2i.data import I2IData
from ...i2i.metrics import constant_fill_psnr, reconstruct
from ...i2i.models import corrupt
from ...objective import score
from ..base import TrialSetup
from .references import I2IReferenceSet, evaluate, gaps


def trial_setup(exp: Any, refs: I2IReferenceSet, device: torch.device) -> TrialSetup:
    """An i2i trial's part: I2IData, the original, metrics against the retrain model, val_psnr judged for
    collapse against filling the masked block with the mean pixel, a reconstruction grid."""
    splits = refs.splits.to(device)
    original = refs.model("original", device)
    common = {"seed": exp.data.seed, "backdoor": refs.backdoor, "poisoned_idx": refs.poisoned_idx.to(device)}

    def scored(model: nn.Module, with_test: bool) -> dict[str, float]:
        m = evaluate(model, splits, original, with_test=with_test, **common)
        m.update(gaps(m, refs.retrain_metrics))
        m.update({f"retrain_{k}": v for k, v in refs.retrain_metrics.items()})
        m["score"] = score(m, exp.objective)
        return m

    def figures(model: nn.Module) -> dict[str, bytes]:
        return {"reconstructions.png": reconstruction_grid(original, refs.model("retrain", device), model, splits)}

    data = I2IData(forget=splits.forget, retain=splits.retain, divergence_scale=refs.divergence_scale)
    return TrialSetup(data=data, original=original, evaluate=scored, collapse_key="val_psnr", unit=" dB",
                      floor=constant_fill_psnr(splits.val.x), floor_what="filling the block with the mean pixel",
                      finite_keys=("retain_psnr", "val_psnr"), figures=figures)


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
