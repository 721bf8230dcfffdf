"""The audit on the CPU proxies: what it says about doing nothing, the declared defaults and the
tuned points of the seed methods, what it costs, and how fast populations train on Ray.

Per setting (MNIST-1D random 10 %, digits class-wise): the untouched original, and for AMUN,
MixUnlearn and SalUn their declared defaults (docs/methods.md) and their shipped start points (the tuned best of a
sweep, bench/start_points.py): forgetting quality F beside its ceiling (the retrain recipe audited
the same way) and F / ceiling, the final score, the LiRA AUC, test Avg Gap on held-out seeds
(mean ± spread), and the audit's wall time as a ratio to one retrain. Then the population training
throughput: the same fresh retrain models trained by a sequential loop and by the Ray runner (tasks
of 1 CPU), side by side in this run.

    python bench/audit.py                                  # both settings, N = 32
    python bench/audit.py --settings mnist1d --models 16 --methods amun,salun
    python bench/audit.py --throughput-only --members 8
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

from ray_unlearn.cache import Store, default_cache_dir
from ray_unlearn.config import load_experiment
from ray_unlearn.confirm import NOISE_ROW, ORIGINAL_ROW, held_out
from ray_unlearn.progress import table
from ray_unlearn.references import prepare
from ray_unlearn.search import population_runner
from ray_unlearn.tasks.classification.audit import Member, audit, sequential_runner

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"
SETTINGS = {"mnist1d": "mnist1d_{}.yaml", "digits": "digits_{}.yaml"}


def configurations(setting: str, methods: list[str]):
    for method in methods:
        exp = load_experiment(SPACES / SETTINGS[setting].format(method))
        yield exp, f"{method} defaults", method, {}
        if exp.start_point():
            yield exp, f"{method} tuned (start:)", method, {**exp.single.fixed, **exp.start_point()}


def audit_setting(setting: str, methods: list[str], models: int, seeds: list[int], store: Store, runner) -> list[dict]:
    device = torch.device("cpu")
    rows = []
    base = None
    for exp, name, method, hp in configurations(setting, methods):
        refs, _ = prepare(exp, store, device)
        started = time.perf_counter()
        report = audit(exp, refs, [(name, method, hp)], models=models, cache_root=str(store.root), runner=runner, device=device)
        seconds = time.perf_counter() - started
        confirm = held_out(exp, [(name, method, hp)], seeds, store, device, noise_floor=base is None)
        by_name = {r["configuration"]: r for r in confirm}
        if base is None:
            base = report
            for row, held in ((report.original, by_name[ORIGINAL_ROW]), (report.ceiling, by_name[NOISE_ROW])):
                rows.append(_row(row, held, math.nan))
        rows.append(_row(report.rows[0], by_name[name], seconds / refs.retrain_metrics["seconds"]))
        print(table(rows, COLUMNS), file=sys.stderr, flush=True)
        if report.void:
            print(f"  audit VOID: {report.void}", file=sys.stderr)
    return rows


COLUMNS = ["row", "F", "ceiling", "F/ceiling", "final score", "AUC", "Avg Gap (held-out)", "time (x retrain)"]


def _row(row, held: dict, time_ratio: float) -> dict:
    m = row.metrics()
    return {"row": row.name, "F": m["audit_forget_quality"], "ceiling": m["audit_ceiling"], "F/ceiling": m["audit_quality_ratio"],
            "final score": m["audit_score"], "AUC": m["audit_auc"], "Avg Gap (held-out)": held["Avg Gap"],
            "time (x retrain)": time_ratio}


def throughput(setting: str, members: int) -> dict:
    """Fresh retrain population models: sequential loop vs the Ray runner, in one run."""
    exp = load_experiment(SPACES / SETTINGS[setting].format("amun"))
    device = torch.device("cpu")
    refs, _ = prepare(exp, Store(default_cache_dir()), device)
    out = {}
    for label, base in (("sequential", 500_000), ("ray", 600_000)):
        batch = [Member("retrain", base + i) for i in range(members)]
        with tempfile.TemporaryDirectory() as tmp:
            runner = sequential_runner(device) if label == "sequential" else population_runner()
            if label == "ray":  # start Ray and its workers before the clock (a sweep has them running already)
                runner(exp, refs, [Member("retrain", 699_999)], tmp)
            started = time.perf_counter()
            runner(exp, refs, batch, tmp)
            out[label] = time.perf_counter() - started
    return {"setting": setting, "members": members, "sequential s": out["sequential"], "ray s": out["ray"],
            "speed-up": out["sequential"] / out["ray"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", default="mnist1d,digits")
    parser.add_argument("--methods", default="amun,mixunlearn,salun")
    parser.add_argument("--models", type=int, default=32, help="N per population (default 32)")
    parser.add_argument("--seeds", default="1,2,3", help="held-out seeds of the Avg Gap column (default 1,2,3)")
    parser.add_argument("--members", type=int, default=8, help="models trained for the throughput ratio (default 8)")
    parser.add_argument("--throughput-only", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    store = Store(default_cache_dir())
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.perf_counter()
    if not args.throughput_only:
        runner = population_runner()
        for setting in args.settings.split(","):
            rows = audit_setting(setting, args.methods.split(","), args.models, seeds, store, runner)
            print(f"\n### {setting}: audit with N = {args.models} (F in [0, 1], higher = better forgotten; AUC 0.5 = "
                  f"indistinguishable from retrain), held-out seeds {seeds}\n")
            print(table(rows, COLUMNS))
    setting = args.settings.split(",")[0]
    print(f"\n### population training throughput ({setting}, fresh retrain models, 2 cores)\n")
    print(table([throughput(setting, args.members)], ["setting", "members", "sequential s", "ray s", "speed-up"]))
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
