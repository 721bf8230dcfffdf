"""Does `ray-unlearn tune` find near-retrain configurations? The yardstick, on seeds the sweep never saw.

For each classification method on MNIST-1D random 10 %: the product's own sweep (`workflow.Sweep`, what
`ray-unlearn tune` runs: Ray Tune + Optuna + MLflow, into a throwaway store) over the method's shipped
search_spaces/ YAML - its search space, objective, `start:` point and re-check rung (`tune.recheck`: its
K best re-run on seeds the sweep never used, the best mean wins) - then the winner, the trial the sweep
tags best, re-run on held-out seeds (data split, forget set, references and method seed all = s, never
the sweep's or the re-check's), test split, mean ± spread and the worst seed of UA / RA / TA / MIA /
Avg Gap (`ray_unlearn.confirm`). Beside it on the same seeds: the declared defaults (docs/methods.md),
the untouched original (doing nothing) and retrain-vs-retrain (the noise floor of Avg Gap).

    python bench/quality.py                                      # every method, its YAML's budget, seeds 1-4
    python bench/quality.py --methods amun,salun,mixunlearn --trials 24
    python bench/quality.py --methods amun --recheck 0           # the one-seed pick, for comparison
    python bench/quality.py --methods amun --set objective.kind=avg_gap   # another objective for the sweep
    python bench/quality.py --methods amun --set objective.example_weight=1 --set objective.population=8 --audit 16
    python bench/quality.py --methods amun,salun,mixunlearn --write   # regenerate their start: points

`--audit N` adds the audit's forgetting quality (docs/metrics.md#the-audit) of the tuned point and the
defaults: N unlearned against N retrained models on the first held-out seed (`ray-unlearn audit`'s
populations, Ray tasks, cached), F as a fraction of the retrain ceiling and the LiRA AUC (0.5: not told
apart from retrain). About 3N model trainings per method.

    python bench/quality.py --methods amun,salun,mixunlearn --trials 1 --recheck 0 --audit 16   # the shipped starts
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway local instance

import torch  # noqa: E402

from ray_unlearn.cache import Store, default_cache_dir  # noqa: E402
from ray_unlearn.config import load_experiment  # noqa: E402
from ray_unlearn.confirm import HEADERS, NOISE_ROW, ORIGINAL_ROW, held_out  # noqa: E402
from ray_unlearn.progress import table  # noqa: E402
from ray_unlearn.registry import CATALOG  # noqa: E402
from ray_unlearn.start_points import write_start  # noqa: E402

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"
# "beats both": the tuned Avg Gap mean is below doing nothing's and the defaults' (or those collapsed),
# and the tuned point failed on no held-out seed.
COLUMNS = ["row", *HEADERS.values(), "worst", "failed", "beats both", "trials", "sweep s", "re-check s"]
AUDIT_COLUMNS = ["F/ceiling", "AUC"]


def tune(exp, store: Store, work: Path):
    """The product's sweep of `exp` (re-check included), as `ray-unlearn tune` runs it; (outcome, seconds)."""
    from ray_unlearn.workflow import Sweep

    started = time.perf_counter()
    sweep = Sweep(exp, tracking_uri=f"sqlite:///{work / 'mlflow.db'}", storage=str(work / "ray_results"), store=store,
                  device=torch.device("cpu"))
    sweep.prepare()
    outcome = sweep.run()
    sweep.finish(outcome)
    return outcome, time.perf_counter() - started


def audit_figures(exp, seed: int, configurations: list, models: int, store: Store, runner) -> dict[str, dict]:
    """F / ceiling and LiRA AUC per row name (the configurations, the original, the ceiling) on one seed."""
    from ray_unlearn.references import prepare
    from ray_unlearn.tasks import get_task

    seeded = exp.reseeded(seed)  # the audit's own populations; a per-example reference is the sweep's business
    seeded = dataclasses.replace(seeded, objective=dataclasses.replace(seeded.objective, example_weight=0.0, population=0))
    refs, _ = prepare(seeded, store, torch.device("cpu"))
    report = get_task(exp.task).audit(seeded, refs, configurations, models=models, cache_root=str(store.root), runner=runner,
                                      device=torch.device("cpu"))
    if report.void:
        print(f"  audit VOID: {report.void}", file=sys.stderr, flush=True)
    named = [(r.name, r) for r in report.rows] + [(ORIGINAL_ROW, report.original), (NOISE_ROW, report.ceiling)]
    return {name: {"F/ceiling": row.metrics()["audit_quality_ratio"], "AUC": row.auc} for name, row in named}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default=",".join(n for n, m in CATALOG.items() if m.task == "classification" and n != "retrain"))
    parser.add_argument("--trials", type=int, help="sweep budget per method (default: the YAML's tune.num_samples)")
    parser.add_argument("--seeds", default="1,2,3,4", help="held-out seeds (default 1,2,3,4)")
    parser.add_argument("--setting", default="mnist1d", help="search_spaces/<setting>_<method>.yaml (default mnist1d)")
    parser.add_argument("--recheck", type=int, metavar="K", help="the sweep's re-check of its K best (default: the YAML's "
                                                                 "tune.recheck; 0: the one-seed pick)")
    parser.add_argument("--write", action="store_true",
                        help="write each winner as its YAML's start: point (only where it failed on no held-out seed)")
    parser.add_argument("--audit", type=int, default=0, metavar="N",
                        help="add the audit's F / ceiling and LiRA AUC with N models per population, on the first held-out seed")
    parser.add_argument("--figure", type=Path, metavar="PNG", help="also draw the tuned rows' held-out Avg Gap beside "
                                                                  "doing nothing and the noise floor (docs/quality.png)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override the YAMLs' keys for the sweep, e.g. --set objective.confidence_weight=1")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    store = Store(default_cache_dir())
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.write and args.overrides:
        parser.error("--write with --set would write a start point the YAML's own search space never swept; edit the YAML instead")
    overrides = list(args.overrides)
    if args.trials is not None:
        overrides.append(f"tune.num_samples={args.trials}")
    if args.recheck is not None:
        overrides.append(f"tune.recheck.top={args.recheck}")
    device = torch.device("cpu")
    columns = COLUMNS + (AUDIT_COLUMNS if args.audit else [])
    runner = None
    if args.audit:
        from ray_unlearn.search import population_runner
        runner = population_runner()
    rows, winners, floor_done = [], [], False
    started_all = time.perf_counter()
    for method in args.methods.split(","):
        path = SPACES / f"{args.setting}_{method}.yaml"
        exp = load_experiment(path, overrides)
        recheck = exp.tune.recheck
        seen = {exp.data.seed, *(recheck.seeds if recheck.top else ())}
        if seen & set(seeds):
            parser.error(f"--seeds {args.seeds}: {path.name}'s sweep or re-check uses seed(s) {sorted(seen & set(seeds))}; "
                         "held-out seeds must be ones the selection never saw")
        budget = f"{exp.tune.num_samples}+{recheck.top}x{len(recheck.seeds)}" if recheck.top else str(exp.tune.num_samples)
        print(f"{method}: sweep of {budget} trials over {path.name}", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            outcome, seconds = tune(exp, store, Path(tmp))
        best = outcome.rows[0]
        point = {k: v for k, v in best["hyperparameters"].items() if k in exp.single.search}
        winners.append(f"{method}: {point} (score {best['score']:.3f}"
                       + (f", robust {best['recheck_score_mean']:.3f})" if "recheck_score_mean" in best else ")"))
        print(f"  winner: {winners[-1]}", file=sys.stderr, flush=True)
        configurations = [("tuned", method, {**exp.single.fixed, **point}), ("defaults", method, {})]
        out = held_out(exp, configurations, seeds, store, device, noise_floor=not floor_done,
                       progress=lambda line: print(f"  {line}", file=sys.stderr, flush=True))
        if args.audit:
            figures = audit_figures(exp, seeds[0], configurations, args.audit, store, runner)
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
            mine = name == "tuned"
            rows.append({**r, "row": label, "worst": f"{r['test_avg_gap_max']:.2f}", "trials": budget if mine else "",
                         "beats both": ("yes" if beats else "no") if mine else "",
                         "sweep s": f"{seconds - outcome.recheck_seconds:.0f}" if mine else "",
                         "re-check s": f"{outcome.recheck_seconds:.0f}" if mine and recheck.top else ""})
        floor_done = True
        print(table(rows, columns), file=sys.stderr, flush=True)
    forget = exp.data.forget
    what = f"random {forget.fraction:.0%}" if forget.kind == "random" else f"{forget.kind} {list(forget.classes)}"
    print(f"\n### {args.setting}, {what}: tuned by `ray-unlearn tune`'s path vs defaults, held-out seeds {seeds}, "
          "test split, mean ± spread, worst seed's Avg Gap\n")
    print(table(rows, columns))
    print("\ntuned points (the sweeps' winners):\n" + "\n".join(f"- {w}" for w in winners))
    if args.figure:
        from ray_unlearn.plots import quality_plot

        tuned = [{**r, "row": r["row"].removesuffix(" tuned")} for r in rows if r["row"].endswith(" tuned") and not r["failed"]]
        named = {r["configuration"]: r for r in rows}
        quality_plot(tuned, named[ORIGINAL_ROW], named[NOISE_ROW], args.figure,
                     f"{args.setting}, {what}: held-out seeds {', '.join(map(str, seeds))} (python bench/quality.py)")
        print(f"wrote {args.figure}")
    print(f"\n(total {time.perf_counter() - started_all:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
