"""Every method, side by side, in the layout of the SalUn / AMUN tables.

For MNIST-1D random 10 % (the CPU proxy of the papers' CIFAR-10 regime; 3 seeds,
mean ± spread) and digits class-wise (digit 0): UA, RA, TA, MIA-efficacy, Avg Gap
to the retrain model (test figures, as the papers report), and wall time as a
ratio to one retrain measured in the same process. Two rows per method:
`default` = the declared defaults (docs/methods.md; paper settings), `start` = the `start:`
point of the method's search_spaces/ YAML (found by sweeping with this tool).

    python bench/methods.py                    # everything (~10 min on 2 cores)
    python bench/methods.py --seeds 1 --methods amun,salun --settings mnist1d
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

from ray_unlearn.cache import Store, default_cache_dir
from ray_unlearn.config import load_experiment
from ray_unlearn.confirm import HEADERS, summarise
from ray_unlearn.methods import METHODS  # the classification methods
from ray_unlearn.progress import table
from ray_unlearn.references import prepare
from ray_unlearn.trial import run_trial

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"
SALUN_CIFAR10 = [  # docs/references.md#published-figures: SalUn, CIFAR-10, ResNet-18, random 10 % (UA / RA / TA / MIA / Avg Gap)
    ("Retrain", 5.24, 100.00, 94.26, 12.88, None), ("FT", 0.63, 99.88, 94.06, 2.70, 3.78),
    ("RL", 7.61, 99.67, 92.83, 37.36, 7.15), ("GA", 0.69, 99.50, 94.01, 1.70, 4.12),
    ("l1-sparse", 4.19, 97.74, 91.59, 9.84, 2.26), ("SalUn", 2.85, 99.62, 93.93, 14.39, 1.15),
]
COLUMNS = ["ua", "retain_acc", "test_acc", "test_mia", "test_avg_gap"]
SUMMARY = [*COLUMNS, "time", "test_r_acc"]  # each shown as mean ± spread over the seeds (ray_unlearn.confirm.summarise)


def experiment(setting: str, method: str, seed: int):
    """The method's own YAML for the setting; digits class-wise falls back to another method's data/recipe."""
    seeds = [f"data.seed={seed}", f"train.seed={seed}"]
    own = SPACES / f"{setting}_{method}.yaml"
    if own.exists():
        exp = load_experiment(own, seeds)
        if setting != "digits" or exp.data.forget.kind == "class":
            return exp
    other = SPACES / ("digits_finetune.yaml" if setting == "digits" else "mnist1d_finetune.yaml")
    return load_experiment(other, [f"method={method}", "fixed={}", "search={}", *seeds])


def run(setting: str, methods: list[str], seeds: list[int], store: Store, hp_sources: list[str]) -> list[dict]:
    rows: dict[tuple[str, str], list[dict]] = {}
    retrain_rows = []
    for seed in seeds:
        for method in methods:
            exp = experiment(setting, method, seed)
            refs, _ = prepare(exp, store, torch.device("cpu"))
            if method == methods[0]:
                retrain_rows.append({**refs.retrain_metrics, "test_avg_gap": 0.0, "ua": 100 - refs.retrain_metrics["forget_acc"],
                                     "time": 1.0})
            for source in hp_sources:
                sampled = exp.start_point() if source == "start" else {}
                if source == "start" and not sampled:
                    continue
                fixed_exp = exp if source == "start" else exp.replace(methods=(dataclasses.replace(exp.single, fixed={}),))
                result = run_trial(fixed_exp, refs, sampled, seed=seed, device=torch.device("cpu"), memo=store.memo(refs.key))
                m = dict(result.metrics)
                m["time"] = m.get("seconds", float("nan")) / refs.retrain_metrics["seconds"]
                m["status"] = result.status
                rows.setdefault((method, source), []).append(m)
                print(f"  {setting} seed {seed} {method:<20} {source:<7} {result.status:<9} "
                      + " ".join(f"{k}={m.get(k, float('nan')):.2f}" for k in COLUMNS), file=sys.stderr, flush=True)
    summarised = [("retrain (reference)", "", retrain_rows), *((m, source, ms) for (m, source), ms in rows.items())]
    return [{"method": m, "hp": source, **summarise(m, ms, len(seeds), SUMMARY)} for m, source, ms in summarised]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--settings", default="mnist1d,digits")
    parser.add_argument("--hp", default="default,start", help="default, start or both (comma-separated)")
    parser.add_argument("--cache-dir", default=str(default_cache_dir()))
    args = parser.parse_args()
    torch.set_num_threads(1)
    store = Store(args.cache_dir)
    methods = [m for m in args.methods.split(",") if m != "retrain"] + (["retrain"] if "retrain" in args.methods else [])
    started = time.perf_counter()
    for setting in args.settings.split(","):
        seeds = list(range(args.seeds)) if setting == "mnist1d" else [0]
        title = "MNIST-1D, random 10 %" if setting == "mnist1d" else "digits, class-wise (digit 0)"
        rows = run(setting, methods, seeds, store, args.hp.split(","))
        cols = ["method", "hp", *(HEADERS.get(k, k) for k in COLUMNS), "time", "status"]
        heads = ["method", "hp", "UA", "RA", "TA", "MIA-Eff", "Avg Gap", "time (x retrain)", "status"]
        if setting == "digits":
            cols.insert(5, "test_r_acc"), heads.insert(5, "Test_r")
        print(f"\n### {title}, seeds {seeds} (test split; Avg Gap over UA, RA, TA, MIA vs retrain)\n")
        print(table(rows, cols, heads))
    print("\n### Published: SalUn, CIFAR-10 ResNet-18, random 10 % (docs/references.md#published-figures)\n")
    print(table([dict(zip(["method", "ua", "retain_acc", "test_acc", "test_mia", "test_avg_gap"], r)) for r in SALUN_CIFAR10],
                ["method", *COLUMNS], ["method", "UA", "RA", "TA", "MIA-Eff", "Avg Gap"]))
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
