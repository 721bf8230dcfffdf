"""Image-to-image unlearning on digits (docs/methods.md#image-to-image-methods), every I2I method beside retrain.

For class-wise (digit 0) and random 10 % forgetting: the digits masked
autoencoder is trained as the original (backdoor planted in half of D_f) and
as the retrain model (D_r only); then i2i_kr (defaults, and the `start:` point
of search_spaces/digits_i2i_kr.yaml with its `fixed:` values, tuned for the
class setting), i2i_noise and i2i_finetune unlearn. Test-split figures;
KR's divergence scale comes from the validation split. Time is a ratio to
the retrain model's training measured in the same process.

    python bench/i2i.py                          # 100-epoch references, 1 seed (~6 min on 2 shared cores)
    python bench/i2i.py --epochs 30 --settings class --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

import torch

from ray_unlearn.config import DataConfig, ForgetConfig, load_experiment
from ray_unlearn.data import load_splits
from ray_unlearn.hparams import make_params
from ray_unlearn.i2i import I2IRecipe, prepare_i2i
from ray_unlearn.methods.base import Context
from ray_unlearn.progress import table
from ray_unlearn.registry import get_method

SETTINGS = {
    "class": ForgetConfig(kind="class", classes=(0,)),
    "random": ForgetConfig(kind="random", fraction=0.1),
}
KR_YAML = Path(__file__).resolve().parents[1] / "search_spaces" / "digits_i2i_kr.yaml"


def yaml_start(path: Path) -> dict:
    """The hyperparameters `ray-unlearn run` uses for `path`: its fixed: values and search start: points."""
    exp = load_experiment(path)
    return dataclasses.asdict(exp.method_params(exp.start_point()))


RUNS = [  # (row label, method, hyperparameters changed from the defaults)
    ("i2i_kr", "i2i_kr", {}),
    ("i2i_kr start", "i2i_kr", yaml_start(KR_YAML)),
    ("i2i_noise", "i2i_noise", {}),
    ("i2i_finetune", "i2i_finetune", {}),
]
COLUMNS = ["retain_psnr", "test_psnr", "forget_psnr", "forget_divergence", "audit_auc", "ood_auroc",
           "backdoor_success", "forget_frechet_encoder", "time_x_retrain", "phase1_steps", "phase1_divergence", "t_max_reached",
           "phase2_epochs"]
HEADERS = ["retain_psnr", "test_psnr", "forget_psnr", "forget_div", "audit_auc", "ood_auroc",
           "backdoor", "frechet_enc", "time/retrain", "p1_steps", "p1_div", "t_max", "p2_epochs"]


def run(setting: str, seed: int, epochs: int) -> dict[str, dict[str, float]]:
    splits = load_splits(DataConfig(dataset="digits", forget=SETTINGS[setting], seed=seed))
    refs = prepare_i2i(splits, I2IRecipe(epochs=epochs, seed=seed))
    retrain_seconds = refs.seconds["retrain"]
    rows = {
        "original": {**refs.evaluate(refs.original, seed=seed), "time_x_retrain": refs.seconds["original"] / retrain_seconds},
        "retrain": {**refs.evaluate(refs.retrain, seed=seed), "time_x_retrain": 1.0},
    }
    data = refs.method_data("val")
    for label, name, changes in RUNS:
        method = get_method(name)
        ctx = Context(seed=seed)
        start = time.perf_counter()
        model = method.run(refs.original, data, make_params(method.Params, changes), ctx)
        seconds = time.perf_counter() - start
        rows[label] = {**refs.evaluate(model, seed=seed), **ctx.extras, "time_x_retrain": seconds / retrain_seconds}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", default="class,random", help="comma-separated: class, random")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (split, training and method)")
    parser.add_argument("--epochs", type=int, default=100, help="reference training epochs (100, as docs/references.md says)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    for setting in args.settings.split(","):
        per_seed = [run(setting, seed, args.epochs) for seed in seeds]
        out = []
        for label in per_seed[0]:
            row = {"method": label}
            for c in COLUMNS:
                values = [r[label][c] for r in per_seed if c in r[label]]
                if values:
                    mean = statistics.fmean(values)
                    row[c] = mean if len(values) == 1 else f"{mean:.3g}±{statistics.stdev(values):.2g}"
            out.append(row)
        print(f"\ndigits, forget {setting}, {args.epochs}-epoch references, seeds {args.seeds} (test split; backdoor in half of D_f)")
        print(table(out, ["method", *COLUMNS], ["method", *HEADERS]))


if __name__ == "__main__":
    main()
