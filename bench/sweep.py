"""The same 32 digits trials, four ways, side by side in one run; ratios to the first.

1. sequential: a plain Optuna loop in one process (what most unlearning codebases do);
2. raw parallel: the trials as plain processes, one per core (the hardware limit here);
3. ray-unlearn tune: the real sweep (Ray Tune + OptunaSearch + MLflow), max_concurrent = cores;
4. naive: parallel processes whose every trial retrains its reference models.

The trials are fixed configurations of an AMUN run on digits (random 10 %), given to
every way (Optuna: enqueued; the sweep: search.points_to_evaluate). References and
AMUN's adversarial set are cached before timing starts. Also printed: scheduling
efficiency = sum(trial compute) / (slots x wall) and the per-trial overhead.

    python bench/sweep.py                 # ~3-5 minutes on 2 cores
    python bench/sweep.py --trials 16 --skip-naive
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway local instance
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import numpy as np  # noqa: E402

from ray_unlearn.cache import Store  # noqa: E402
from ray_unlearn.config import load_experiment  # noqa: E402
from ray_unlearn.progress import table  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "search_spaces" / "digits_amun.yaml"
OVERRIDES = ["fixed={steps: 20, epsilon: 0.1}", "search={lr: {float: [1.0e-3, 0.1], log: true}, "
             "epochs: {int: [10, 30]}, decay_step: {choice: [1, 5, 10]}}"]


def trial_configs(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.RandomState(seed)
    return [{"lr": float(np.exp(rng.uniform(np.log(1e-3), np.log(0.1)))), "epochs": int(rng.randint(10, 31)),
             "decay_step": int(rng.choice([1, 5, 10]))} for _ in range(n)]


def experiment(cache_dir: str):
    return load_experiment(CONFIG, OVERRIDES)


# --- workers for the process-based ways -------------------------------------------------------

_STATE: dict = {}


def _init_worker(cache_dir: str, naive: bool) -> None:
    import torch

    from ray_unlearn.references import prepare

    torch.set_num_threads(1)
    exp = experiment(cache_dir)
    _STATE.update(exp=exp, cache_dir=cache_dir, naive=naive)
    if not naive:
        _STATE["refs"], _ = prepare(exp, Store(cache_dir), torch.device("cpu"))


def _run_one(config: dict) -> float:
    import torch

    from ray_unlearn.references import prepare
    from ray_unlearn.trial import run_trial

    start = time.perf_counter()
    exp = _STATE["exp"]
    if _STATE["naive"]:  # retrain both references, as a trial that knows no cache would
        with tempfile.TemporaryDirectory() as tmp:
            refs, _ = prepare(exp, Store(tmp), torch.device("cpu"))
    else:
        refs = _STATE["refs"]
    run_trial(exp, refs, config, seed=0, device=torch.device("cpu"), memo=Store(_STATE["cache_dir"]).memo(refs.key))
    return time.perf_counter() - start


# --- the four ways ---------------------------------------------------------------------------

def sequential(configs: list[dict], cache_dir: str) -> tuple[float, float]:
    import optuna

    _init_worker(cache_dir, naive=False)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    for c in configs:
        study.enqueue_trial(c)
    compute = []

    def objective(trial) -> float:
        config = {"lr": trial.suggest_float("lr", 1e-3, 0.1, log=True), "epochs": trial.suggest_int("epochs", 10, 30),
                  "decay_step": trial.suggest_categorical("decay_step", [1, 5, 10])}
        compute.append(_run_one(config))
        return 0.0

    start = time.perf_counter()
    study.optimize(objective, n_trials=len(configs))
    return time.perf_counter() - start, sum(compute)


def parallel(configs: list[dict], cache_dir: str, slots: int, naive: bool) -> tuple[float, float]:
    ctx = mp.get_context("spawn")
    start = time.perf_counter()
    with ctx.Pool(slots, initializer=_init_worker, initargs=(cache_dir, naive)) as pool:
        compute = pool.map(_run_one, configs, chunksize=1)
    return time.perf_counter() - start, sum(compute)


def ray_unlearn_tune(configs: list[dict], cache_dir: str, slots: int, work: Path) -> tuple[float, float, float]:
    from ray_unlearn.config import parse_experiment
    from ray_unlearn.search import ensure_ray
    from ray_unlearn.workflow import Sweep

    raw = experiment(cache_dir).to_dict()
    raw["search"]["points_to_evaluate"] = configs
    raw["tune"].update(num_samples=len(configs), max_concurrent=slots)
    exp = parse_experiment(raw)
    t0 = time.perf_counter()
    ensure_ray(None)
    ray_start = time.perf_counter() - t0
    sweep = Sweep(exp, tracking_uri=f"sqlite:///{work / 'mlflow.db'}", storage=str(work / "ray_results"), store=Store(cache_dir))
    sweep.prepare()
    start = time.perf_counter()
    outcome = sweep.run()
    sweep.finish(outcome)
    wall = time.perf_counter() - start
    compute = sum(r["trial_finished"] - r["trial_started"] for r in outcome.rows)
    return wall, compute, ray_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--slots", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()
    configs = trial_configs(args.trials)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cache_dir = str(work / "cache")
        import torch

        from ray_unlearn.references import prepare
        from ray_unlearn.trial import run_trial

        exp = experiment(cache_dir)  # warm the cache: references + the AMUN adversarial set
        refs, _ = prepare(exp, Store(cache_dir), torch.device("cpu"))
        run_trial(exp, refs, configs[0], seed=0, device=torch.device("cpu"), memo=Store(cache_dir).memo(refs.key))
        print(f"{args.trials} AMUN trials on digits, {args.slots} slots; timing...", file=sys.stderr)

        rows = []
        wall, compute = sequential(configs, cache_dir)
        rows.append({"way": "1 sequential Optuna loop", "wall": wall, "compute": compute, "slots": 1})
        wall, compute = parallel(configs, cache_dir, args.slots, naive=False)
        rows.append({"way": f"2 raw parallel processes ({args.slots})", "wall": wall, "compute": compute, "slots": args.slots})
        wall, compute, ray_start = ray_unlearn_tune(configs, cache_dir, args.slots, work)
        rows.append({"way": f"3 ray-unlearn tune (max_concurrent {args.slots})", "wall": wall, "compute": compute, "slots": args.slots})
        if not args.skip_naive:
            wall, compute = parallel(configs, cache_dir, args.slots, naive=True)
            rows.append({"way": "4 naive: every trial retrains references", "wall": wall, "compute": compute, "slots": args.slots})
    base = rows[0]["wall"]
    for r in rows:
        r["speed vs 1"] = base / r["wall"]
        r["efficiency"] = r["compute"] / (r["slots"] * r["wall"])
        r["overhead/trial s"] = (r["slots"] * r["wall"] - r["compute"]) / args.trials
    print(table(rows, ["way", "wall", "compute", "speed vs 1", "efficiency", "overhead/trial s"],
                ["way", "wall s", "sum trial s", "speed vs 1", "efficiency", "overhead/trial s"]))
    print(f"(Ray start-up, paid once per sweep and not in way 3's wall: {ray_start:.1f} s; "
          "efficiency = sum(trial compute) / (slots x wall))")


if __name__ == "__main__":
    main()
