"""Does tuning find near-retrain configurations? The yardstick, on seeds the sweep never saw.

For each classification method on MNIST-1D random 10 %: a sweep of a fixed budget over the
method's shipped search_spaces/ YAML (its own search space and objective, Optuna TPE, seed 0 -
what `ray-unlearn tune` does, in-process here), then its winner re-run on held-out seeds
(data split, forget set, references and method seed all = s, never the sweep's or the re-check's), test split,
mean ± spread of UA / RA / TA / MIA / Avg Gap (`ray_unlearn.confirm`). Beside it on the same seeds:
the METHODS.md defaults, the untouched original (doing nothing) and retrain-vs-retrain (the
`retrain` method against the reference retrain: the noise floor of Avg Gap).

    python bench/quality.py                                   # every method, 32 trials, seeds 1,2,3
    python bench/quality.py --methods amun,salun,mixunlearn --trials 24
    python bench/quality.py --methods salun --trials 8 --seeds 1,2   # a quick look
    python bench/quality.py --methods amun --set objective.kind=avg_gap   # another objective for the sweep
    python bench/quality.py --methods amun,salun,mixunlearn --write   # regenerate their start: points

The sweep's 5 best candidates are re-run on seeds 10 and 20 and the best mean over the three seeds
wins (`--recheck`, `--recheck-seeds`): a winner picked on one seed's noisy validation figures is
partly picked for its luck. "trials" shows the budget as sweep+K x re-check seeds.

`--audit N` adds the audit's forgetting quality (METHODS.md §7) of the tuned point and the defaults:
N unlearned against N retrained models on the first held-out seed (`ray-unlearn audit`'s populations,
trained as Ray tasks and cached), F as a fraction of the retrain ceiling and the LiRA AUC (0.5: not
told apart from retrain). Minutes per method: about 3N model trainings.

    python bench/quality.py --methods amun,salun,mixunlearn --trials 1 --recheck 0 --audit 16   # the shipped starts
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from ray_unlearn.cache import Store, default_cache_dir
from ray_unlearn.config import load_experiment
from ray_unlearn.confirm import HEADERS, NOISE_ROW, ORIGINAL_ROW, held_out
from ray_unlearn.methods import METHODS
from ray_unlearn.progress import table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from start_points import recheck, seeded_experiments, sweep, write_start  # noqa: E402  (the same in-process Optuna sweep)

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"
# "beats both": the tuned Avg Gap mean is below doing nothing's and the METHODS.md defaults' (or
# those collapsed), and the tuned point failed on no held-out seed.
COLUMNS = ["row", *HEADERS.values(), "failed", "beats both", "trials", "sweep s"]
AUDIT_COLUMNS = ["F/ceiling", "AUC"]


def audit_figures(path: Path, seed: int, configurations: list, models: int, store: Store, runner) -> dict[str, dict]:
    """F / ceiling and LiRA AUC per row name (the configurations, the original, the ceiling) on one seed."""
    from ray_unlearn.tasks.classification.audit import audit  # torch-heavy: only when asked

    exp, refs = seeded_experiments(path, [seed], store)[seed]
    report = audit(exp, refs, configurations, models=models, cache_root=str(store.root), runner=runner, device=torch.device("cpu"))
    if report.void:
        print(f"  audit VOID: {report.void}", file=sys.stderr, flush=True)
    named = [(r.name, r) for r in report.rows] + [(ORIGINAL_ROW, report.original), (NOISE_ROW, report.ceiling)]
    return {name: {"F/ceiling": row.metrics()["audit_quality_ratio"], "AUC": row.auc} for name, row in named}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default=",".join(m for m in METHODS if m != "retrain"))
    parser.add_argument("--trials", type=int, default=32, help="sweep budget per method (default 32)")
    parser.add_argument("--seeds", default="1,2,3", help="held-out seeds (default 1,2,3)")
    parser.add_argument("--sweep-seeds", default="0",
                        help="data/model seeds every sweep candidate runs on, scored by their mean (default 0; e.g. 0,10)")
    parser.add_argument("--setting", default="mnist1d", help="search_spaces/<setting>_<method>.yaml (default mnist1d)")
    parser.add_argument("--recheck", type=int, default=5, metavar="K",
                        help="re-run the sweep's K best candidates on --recheck-seeds and pick the best mean (default 5; 0: off)")
    parser.add_argument("--recheck-seeds", default="10,20", help="seeds of the re-check, never held-out ones (default 10,20)")
    parser.add_argument("--write", action="store_true",
                        help="write each winner as its YAML's start: point (only where it failed on no held-out seed)")
    parser.add_argument("--audit", type=int, default=0, metavar="N",
                        help="add the audit's F / ceiling and LiRA AUC with N models per population, on the first held-out seed (default 0: off)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override the YAMLs' keys for the sweep, e.g. --set objective.confidence_weight=1")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    store = Store(default_cache_dir())
    seeds = [int(s) for s in args.seeds.split(",")]
    sweep_seeds = [int(s) for s in args.sweep_seeds.split(",")]
    recheck_seeds = [int(s) for s in args.recheck_seeds.split(",")] if args.recheck else []
    if set(seeds) & (set(sweep_seeds) | set(recheck_seeds)):
        parser.error(f"--seeds {args.seeds} overlaps --sweep-seeds {args.sweep_seeds} or --recheck-seeds {args.recheck_seeds}: "
                     "held-out seeds must be ones the selection never saw")
    if args.write and args.overrides:
        parser.error("--write with --set would write a start point the YAML's own search space never swept; edit the YAML instead")
    if args.audit and args.overrides:
        parser.error("--audit with --set: the audit runs the YAML as shipped; edit the YAML instead")
    device = torch.device("cpu")
    columns = COLUMNS + (AUDIT_COLUMNS if args.audit else [])
    runner = None
    if args.audit:
        from ray_unlearn.search import population_runner  # starts Ray: only when asked
        runner = population_runner()
    budget = f"{args.trials}+{args.recheck}x{len(recheck_seeds)}" if args.recheck else str(args.trials)
    rows, winners, floor_done = [], [], False
    started_all = time.perf_counter()
    for method in args.methods.split(","):
        path = SPACES / f"{args.setting}_{method}.yaml"
        started = time.perf_counter()
        print(f"{method}: sweep of {args.trials} trials over {path.name} (seeds {sweep_seeds})", file=sys.stderr, flush=True)
        point, trials = sweep(path, sweep_seeds, args.trials, margin=0.0, store=store, overrides=args.overrides, aggregate="mean")
        if args.recheck:
            rechecked, _ = recheck(path, trials, args.recheck, recheck_seeds, len(sweep_seeds), store, args.overrides)
            point = rechecked or point  # nothing finished: the sweep's own pick
        sweep_seconds = time.perf_counter() - started
        winners.append(f"{method}: {point}")
        print(f"  winner: {point}", file=sys.stderr, flush=True)
        exp = load_experiment(path, args.overrides)
        configurations = [("tuned", method, {**exp.single.fixed, **point}), ("defaults", method, {})]
        out = held_out(exp, configurations, seeds, store, device, noise_floor=not floor_done,
                       progress=lambda line: print(f"  {line}", file=sys.stderr, flush=True))
        if args.audit:
            figures = audit_figures(path, seeds[0], configurations, args.audit, store, runner)
            out = [{**r, **figures.get(r["configuration"], {})} for r in out]
        by_name = {r["configuration"]: r for r in out}
        tuned, nothing = by_name["tuned"], by_name[ORIGINAL_ROW]
        beats = (tuned["failed"] == 0 and tuned["test_avg_gap_mean"] < nothing["test_avg_gap_mean"]
                 and (by_name["defaults"]["failed"] > 0 or tuned["test_avg_gap_mean"] < by_name["defaults"]["test_avg_gap_mean"]))
        if args.write and tuned["failed"] == 0:
            command = f"python bench/quality.py {' '.join(argv if argv is not None else sys.argv[1:])}"
            write_start(path, point, command)
            print(f"  wrote start: {point} into {path}", file=sys.stderr, flush=True)
        for r in out:
            name = r["configuration"]
            if name.startswith("original") and floor_done:
                continue  # doing nothing is the same for every method: shown once
            label = f"{method} {name}" if name in ("tuned", "defaults") else name
            rows.append({**r, "row": label, "trials": budget if name == "tuned" else "",
                         "beats both": ("yes" if beats else "no") if name == "tuned" else "",
                         "sweep s": f"{sweep_seconds:.0f}" if name == "tuned" else ""})
        floor_done = True
        print(table(rows, columns), file=sys.stderr, flush=True)
    forget = exp.data.forget
    what = f"random {forget.fraction:.0%}" if forget.kind == "random" else f"{forget.kind} {list(forget.classes)}"
    print(f"\n### {args.setting}, {what}: tuned (sweep on seeds {sweep_seeds}) vs defaults, held-out seeds {seeds}, test split, mean ± spread\n")
    print(table(rows, columns))
    print("\ntuned points (the sweeps' winners):\n" + "\n".join(f"- {w}" for w in winners))
    print(f"\n(total {time.perf_counter() - started_all:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
