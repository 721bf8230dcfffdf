"""How the driver's cost grows with the work: sweeps of near-zero-cost trials, three ways, side by side.

Every trial runs `instant`, a real method registered as a plugin (a package and its
`*.dist-info/entry_points.txt` written to a temporary folder and put on PYTHONPATH before Ray
starts, so the Ray workers find it too): `unlearn` scales the weights by 1 - shrink (at most 1 %)
and reports 3 epochs at once. On digits (digits_amun.yaml's data, model and references), so each
trial still runs the real evaluation (3 per-epoch evaluations with `tune.report_seconds=0`, then
the final one), per-epoch reporting, Optuna (TPE over 3 parameters) and, in the product, MLflow.
`Method.run` validates the hyperparameters, needs a non-empty forget and retain set and hands
`unlearn` a copy of the original; the 1 % shrink leaves digits' accuracies (hence the scores) all
but unchanged, which costs TPE nothing. A trial costs ~0.2 s of compute alone. The arms, per size
(trials x slots), on one local Ray instance with `--cpus` logical CPUs (default 32, whatever the
machine's cores; each slot's actor holds torch and the references in memory):

  tune alone    Ray Tune with the product's trainable (`search._trainable` through
                `tune.with_parameters`: the same trial code, per-epoch `tune.report`, the trial's
                files in a final checkpoint) and the product's searcher (`search.build_searcher`:
                OptunaSearch + TPE), `reuse_actors=True`; no tracking or progress callbacks. The
                Tune settings the product makes at import (snapshot every 2 s, no per-result
                logger files) hold here too; `--tune-defaults` gives this arm Tune's own defaults.
                Every ratio (x columns) is to this arm of the same size.
  ray-unlearn   the product: `workflow.Sweep` (MLflow into a throwaway SQLite file, or with
                `--tracking server` an `mlflow server` process on 127.0.0.1 as tests/conftest.py
                starts it); `Sweep.run` is timed, `Sweep.finish` (table, plots) is shown apart.
  optuna alone  a plain `study.optimize` in this process calling the same trial work
                (`trial_work`: what `_trainable` does, with `trial.report` per epoch), TPE on
                the same seed.

Measured (n trials, `slots` concurrent; in the Tune arms the driver is this process, timed from
the outside by class-level wrappers in this process only; nothing in ray_unlearn is edited):

  wall s        Sweep.run / Tuner.fit / study.optimize
  trial ms      mean trial compute: trial_finished - trial_started as the trainable reports them
                (Optuna: the trial work's own time); on 2 cores with 8+ slots, trials share cores
  start s       from the arm's start to the first trial's start (actor and worker start-up)
  idle ms       driver wall overhead per trial = (wall - start - sum(trial compute) / slots) / n:
                slot time not spent in a trial after the first trial started, per trial (start-up
                is paid once per sweep and shown apart; Optuna: slots = 1, so wall - compute)
  busy ms       the driver's serial work per trial = (wall - time the main thread spent inside
                ray.wait) / n: the Tune loop's time not spent waiting for an event; 1000 / busy ms
                caps trials/s whatever the cluster (Optuna: wall - trial compute)
  cpu ms        driver CPU per trial = delta time.process_time() / n: every thread of this process
                (Ray's core-worker threads, the MLflow writer thread and its SQLite writes);
                Optuna: minus the trial work's own thread CPU
  main ms       the main thread's CPU per trial (time.thread_time(); the Tune loop and callbacks)
  optuna ms     searcher time per trial = (suggest + per-result report + tell) / n, from wrappers
                on SweepSearch.suggest / on_trial_result / on_trial_complete (Optuna alone: ask and
                the suggest_* calls, trial.report, tell); `first>last` is the mean suggest + tell
                of the first and of the last tenth of the trials: TPE's growth with n
  snap ms       experiment-state snapshots (TuneController.save_to_dir: searcher, callbacks,
                trial states) per trial, and how many
  cb ms         the product's Tune callbacks (_TrackingCallback, _ProgressCallback) per trial
  write ms      MLflow: mean / p95 duration of each BackgroundWriter task (start, epoch, files,
                end of a trial); `q max` the most tasks waiting in its queue at any submit
  RSS MB        this process's resident memory after the arm (/proc/self/statm; all arms run in one
                process, in the order tune alone, ray-unlearn, optuna alone; the arm's growth beside)

Then the in-Ray slowdown of a real trial: digits_amun.yaml's start point, N+1 times one after
another inside Ray (Ray Tune, the product's `_trainable`, one slot) and in a plain process (the
same `trial_work`, one torch thread; N+1 before and N+1 after the Ray run), the first of each run
dropped (warm-up); the median wall per trial and its ratio to the plain process's. A third row runs
the plain process without per-epoch reports (bench/sweep.py's raw way). Nothing else runs meanwhile.

    python bench/scale.py --quick                    # 50 trials, 8 slots: ~2-3 minutes on 2 cores
    python bench/scale.py                            # 100, 300, 1000 trials x 8, 32 slots: 44 min on 2 cores
    python bench/scale.py --trials 100 --slots 8 --profile /tmp/driver.prof
    python bench/scale.py --smoke                    # tiny, under a minute (tests/test_bench_scale.py)

`--profile FILE` runs one more ray-unlearn sweep (first size) under cProfile (the driver's main
thread, where the Tune loop and its callbacks run), after the table so the table is not slowed,
writes the stats to FILE and prints, as shares of the main thread's busy time (outside ray.wait),
the loop's stages (STAGES) and the top functions by own time.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import statistics
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway local instance
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "search_spaces" / "digits_amun.yaml"
METHOD = "instant"
# digits_amun.yaml with the instant method: its data, model and references; every epoch reported
OVERRIDES = [f"method={METHOD}", "fixed={epochs: 3}", "search={shrink: auto, a: auto, b: auto}", "tune.report_seconds=0"]
PLUGIN = {
    "scale_bench_plugin/__init__.py": '''
        """bench/scale.py's method: near-zero cost, so the driver's cost per trial shows."""
        import dataclasses

        import torch

        from ray_unlearn.hparams import hp
        from ray_unlearn.methods.base import Method


        @dataclasses.dataclass(frozen=True)
        class InstantParams:
            shrink: float = hp(1e-3, ge=0.0, le=0.01, low=1e-4, high=1e-2, log=True, help="weights times 1 - shrink")
            a: float = hp(0.5, ge=0.0, le=1.0, low=0.0, high=1.0, help="searched, unused (TPE's work)")
            b: int = hp(3, ge=1, le=10, low=1, high=10, help="searched, unused (TPE's work)")
            epochs: int = hp(3, ge=1, le=100, help="epochs reported (each one evaluated)")


        class Instant(Method):
            """Scales the weights by 1 - shrink and reports `epochs` epochs at once."""
            name = "instant"
            summary = "bench/scale.py: returns at once (the weights scaled by at most 1 %)"
            paper = "none: a bench method"
            Params = InstantParams

            def unlearn(self, model, data, hp, ctx):
                with torch.no_grad():
                    for p in model.parameters():
                        p.mul_(1.0 - hp.shrink)
                for epoch in range(1, hp.epochs + 1):
                    if not ctx.report(epoch, model, loss=0.0):
                        break
                return model
    ''',
}
ENTRY_POINTS = f"[ray_unlearn.methods]\n{METHOD} = scale_bench_plugin:Instant\n"

TUNE_ALONE, PRODUCT, OPTUNA = "tune alone", "ray-unlearn", "optuna alone"
FULL = {"trials": [100, 300, 1000], "slots": [8, 32], "real_trials": 8, "cpus": 32}
QUICK = {"trials": [50], "slots": [8], "real_trials": 3, "cpus": 32}
SMOKE = {"trials": [6], "slots": [2], "real_trials": 1, "cpus": 4}


def write_plugin(root: Path) -> Path:
    """The `instant` method as an installed package would be: sources plus a dist-info with entry points."""
    for name, text in PLUGIN.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    info = root / "scale_bench_plugin-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: scale-bench-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return root


def use_plugin(root: Path) -> None:
    """On this process's path and on the PYTHONPATH that Ray's workers inherit (before Ray starts)."""
    sys.path.insert(0, str(root))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])


# --- what the wrappers collect -----------------------------------------------------------------

@dataclasses.dataclass
class Stats:
    """One arm's timings (seconds), filled by the class-level wrappers below."""

    suggest: list[float] = dataclasses.field(default_factory=list)
    result: list[float] = dataclasses.field(default_factory=list)
    tell: list[float] = dataclasses.field(default_factory=list)
    snapshots: list[float] = dataclasses.field(default_factory=list)
    callbacks: list[float] = dataclasses.field(default_factory=list)
    waits: list[float] = dataclasses.field(default_factory=list)  # main thread inside ray.wait
    writes: list[tuple[str, float, float, float]] = dataclasses.field(default_factory=list)  # kind, queued, start, end
    sync_writes: list[float] = dataclasses.field(default_factory=list)  # BackgroundWriter.call on the main thread
    flushes: list[float] = dataclasses.field(default_factory=list)  # SweepTracker.flush: one log_batch of buffered epochs
    queue_max: int = 0


STATS = Stats()


def timed_into(bucket: str, main_thread_only: bool = False) -> Callable[[Callable], Callable]:
    def make(inner: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if main_thread_only and threading.current_thread() is not threading.main_thread():
                return inner(*args, **kwargs)
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                getattr(STATS, bucket).append(time.perf_counter() - start)

        timed.__wrapped__ = inner  # type: ignore[attr-defined]
        return timed

    return make


def timed_submit(inner: Callable) -> Callable:
    """BackgroundWriter.submit: each task timed where it runs, the queue's depth read at every submit."""

    def submit(self: Any, fn: Callable, *args: Any, **kwargs: Any) -> None:
        queued = time.perf_counter()
        kind = getattr(fn, "__name__", "write")

        def task(*a: Any, **k: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                STATS.writes.append((kind, queued, start, time.perf_counter()))

        task.__name__ = kind
        inner(self, task, *args, **kwargs)
        STATS.queue_max = max(STATS.queue_max, self.queue.qsize())

    return submit


@contextlib.contextmanager
def patched(owner: Any, name: str, make: Callable[[Callable], Callable]) -> Iterator[None]:
    """`owner.name` wrapped for the duration (an attribute inherited from a base is wrapped on `owner`)."""
    own = name in vars(owner)
    original = getattr(owner, name)
    setattr(owner, name, make(original))
    try:
        yield
    finally:
        if own:
            setattr(owner, name, original)
        else:
            delattr(owner, name)


@contextlib.contextmanager
def instrumented() -> Iterator[None]:
    """Every wrapper on, for the timed arms (class attributes of this process only; restored after)."""
    import ray
    from ray.tune.execution.tune_controller import TuneController

    from ray_unlearn import search
    from ray_unlearn.tracking import BackgroundWriter, SweepTracker

    wraps = [(search.SweepSearch, "suggest", timed_into("suggest")),
             (search.SweepSearch, "on_trial_result", timed_into("result")),
             (search.SweepSearch, "on_trial_complete", timed_into("tell")),
             (TuneController, "save_to_dir", timed_into("snapshots")),
             (ray, "wait", timed_into("waits", main_thread_only=True)),
             (BackgroundWriter, "submit", timed_submit),
             (BackgroundWriter, "call", timed_into("sync_writes", main_thread_only=True)),
             (SweepTracker, "_flush", timed_into("flushes"))]
    for cls in (search._TrackingCallback, search._ProgressCallback):
        for hook in ("on_trial_start", "on_trial_result", "on_trial_complete", "on_trial_error"):
            if hook in vars(cls):
                wraps.append((cls, hook, timed_into("callbacks")))
    with contextlib.ExitStack() as stack:
        for owner, name, make in wraps:
            stack.enter_context(patched(owner, name, make))
        yield


@contextlib.contextmanager
def environment(values: dict[str, str | None]) -> Iterator[None]:
    """Environment variables set (None: unset) for the duration."""
    saved = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --- the trial work and the experiments --------------------------------------------------------

def trial_work(exp: Any, refs: Any, config: dict, cache_root: str,
               report: Callable[[dict], None] | None) -> tuple[float, dict[str, float]]:
    """What `search._trainable` does for one trial, without Tune: the trial with per-epoch reports,
    the final metrics, the trial's files written to a temporary folder. Returns (seconds, final metrics)."""
    import torch

    from ray_unlearn.cache import Store
    from ray_unlearn.objective import WORST_SCORE, targets
    from ray_unlearn.trial import run_repeats, write_trial_files

    start, started = time.perf_counter(), time.time()
    history: list[dict] = []

    def on_report(metrics: dict) -> None:
        history.append(metrics)
        if report is not None:
            report(metrics)

    result = run_repeats(exp, refs, config, device=torch.device("cpu"), report=on_report, memo=Store(cache_root).memo(refs.key))
    final = dict(result.metrics)
    for metric, direction in targets(exp.objective):
        final.setdefault(metric, WORST_SCORE if direction == "max" else -WORST_SCORE)
    info = {"status": result.status, "message": result.message, "device": "cpu", "trial_started": started, "trial_finished": time.time()}
    with tempfile.TemporaryDirectory() as tmp:
        write_trial_files(tmp, result, history, info, save_model=exp.tracking.log_models)
    return time.perf_counter() - start, final


def instant_experiment(n: int, slots: int, name: str) -> Any:
    from ray_unlearn.config import load_experiment, parse_experiment

    raw = load_experiment(CONFIG, OVERRIDES).to_dict()
    raw["experiment"] = name
    raw["tune"].update(num_samples=n, max_concurrent=slots)
    return parse_experiment(raw)


# --- the arms ----------------------------------------------------------------------------------

@dataclasses.dataclass
class Measured:
    wall: float
    compute: list[float]  # per trial, seconds
    first_start: float  # seconds from the arm's start to the first trial's start
    cpu: float  # process CPU seconds (Optuna: minus the trial work's own)
    main_cpu: float
    busy: float  # the driver's serial work, seconds
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system) of the live processes of process group `pgid` (the MLflow server and its
    workers: it runs in its own session), read from /proc (Linux; nan elsewhere)."""
    if not Path("/proc").is_dir():
        return math.nan
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # pgrp, then utime and stime (fields 5, 14 and 15 of proc(5))
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def rss_bytes() -> int:
    """This process's resident memory now (Linux /proc; the peak from getrusage elsewhere)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def from_rows(rows: list[dict], started_at: float) -> tuple[list[float], float]:
    """(compute per trial, first start after `started_at`) from the trials' reported times."""
    done = [r for r in rows if isinstance(r.get("trial_started"), (int, float)) and isinstance(r.get("trial_finished"), (int, float))]
    compute = [r["trial_finished"] - r["trial_started"] for r in done]
    first = min((r["trial_started"] for r in done), default=math.nan) - started_at
    return compute, first


def timed_driver(run: Callable[[], Any]) -> tuple[Any, float, float, float, float, float]:
    """(what `run` returns, wall, process CPU, main-thread CPU, time.time() at start, main-thread wait)."""
    waits_before = len(STATS.waits)
    t_wall, t_cpu, t_main, t_epoch = time.perf_counter(), time.process_time(), time.thread_time(), time.time()
    out = run()
    wall = time.perf_counter() - t_wall
    cpu, main = time.process_time() - t_cpu, time.thread_time() - t_main
    return out, wall, cpu, main, t_epoch, sum(STATS.waits[waits_before:])


def tune_alone(n: int, slots: int, refs: Any, cache_root: str, work: Path, tune_defaults: bool) -> Measured:
    from ray import tune

    from ray_unlearn.search import _trainable, build_searcher

    exp = instant_experiment(n, slots, f"scale-tune-{n}x{slots}")
    trainable = tune.with_resources(tune.with_parameters(_trainable, exp=exp, refs=refs, cache_root=cache_root), {"cpu": 1, "gpu": 0})
    env = {"TUNE_GLOBAL_CHECKPOINT_S": None, "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": None} if tune_defaults else {}
    with environment(env):
        tuner = tune.Tuner(trainable,
                           tune_config=tune.TuneConfig(search_alg=build_searcher(exp), num_samples=n, max_concurrent_trials=slots,
                                                       reuse_actors=True),
                           run_config=tune.RunConfig(name=f"tune-{n}x{slots}-{uuid.uuid4().hex[:6]}", storage_path=str(work / "ray_results"),
                                                     verbose=0))
        grid, wall, cpu, main, t0, waited = timed_driver(tuner.fit)
    rows = [dict(r.metrics or {}) for r in grid]
    compute, first = from_rows(rows, t0)
    errors = sum(r.error is not None for r in grid)
    return Measured(wall, compute, first, cpu, main, wall - waited, {"errors": errors, "trials": len(rows)})


def product(n: int, slots: int, refs: Any, store: Any, work: Path, tracking_uri: str | None, server_pid: int | None,
            profile: str | None = None) -> Measured:
    from ray_unlearn.workflow import Sweep

    exp = instant_experiment(n, slots, f"scale-{n}x{slots}-{uuid.uuid4().hex[:6]}")
    uri = tracking_uri or f"sqlite:///{work / f'mlflow-{exp.experiment}.db'}"
    sweep = Sweep(exp, tracking_uri=uri, storage=str(work / "ray_results"), store=store)
    sweep.refs = refs
    server_before = group_cpu_seconds(server_pid) if server_pid else 0.0
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        outcome, wall, cpu, main, t0, waited = timed_driver(lambda: profiler.runcall(sweep.run))
        profiler.dump_stats(profile)
    else:
        outcome, wall, cpu, main, t0, waited = timed_driver(sweep.run)
    server_cpu = group_cpu_seconds(server_pid) - server_before if server_pid else math.nan
    blocking = sum(STATS.sync_writes)  # before finish's own
    started = time.perf_counter()
    sweep.finish(outcome)
    finish = time.perf_counter() - started
    compute, first = from_rows(outcome.rows, t0)
    return Measured(wall, compute, first, cpu, main, wall - waited,
                    {"errors": outcome.errors, "trials": len(outcome.rows), "blocking MLflow calls s": blocking,
                     "finish s": finish, "server CPU ms/trial": 1000 * server_cpu / n, "dropped writes": len(sweep.tracker.writer.failures)})


def optuna_alone(n: int, refs: Any, cache_root: str) -> Measured:
    import optuna

    from ray_unlearn.objective import targets
    from ray_unlearn.search import make_sampler

    exp = instant_experiment(n, 1, f"scale-optuna-{n}")
    (metric, mode), = targets(exp.objective)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize",
                                sampler=make_sampler(exp.tune.sampler, exp.tune.seed, 1))
    compute: list[float] = []
    work_cpu = [0.0]
    marks: dict[str, float] = {}

    def objective(trial: Any) -> float:
        config = {key: dim.suggest(trial, key) for key, dim in exp.search.items()}
        STATS.suggest.append(time.perf_counter() - marks["told"])  # ask (before the call) and the suggest_* calls
        reported = [0.0]

        def report(metrics: dict) -> None:
            start = time.perf_counter()
            trial.report(float(metrics[metric]), int(metrics["epoch"]))
            reported[0] += time.perf_counter() - start

        cpu = time.thread_time()
        seconds, final = trial_work(exp, refs, config, cache_root, report)
        work_cpu[0] += time.thread_time() - cpu
        compute.append(seconds - reported[0])
        STATS.result.append(reported[0])
        marks["returned"] = time.perf_counter()
        return float(final[metric])

    def told(study: Any, trial: Any) -> None:
        marks["told"] = time.perf_counter()
        STATS.tell.append(marks["told"] - marks["returned"])

    cpu, main = time.process_time(), time.thread_time()
    start = marks["told"] = time.perf_counter()
    study.optimize(objective, n_trials=n, callbacks=[told])
    wall = time.perf_counter() - start
    cpu, main = time.process_time() - cpu - work_cpu[0], time.thread_time() - main - work_cpu[0]
    return Measured(wall, compute, 0.0, cpu, main, wall - sum(compute))


# --- rows --------------------------------------------------------------------------------------

def mean_ms(values: list[float], n: int) -> float:
    return 1000.0 * sum(values) / n if n else math.nan


def decile_growth(stats: Stats) -> str:
    """Mean suggest + tell (ms) of the first and last tenth of the trials."""
    per_trial = [s + t for s, t in zip(stats.suggest, stats.tell)]
    if not per_trial:
        return ""
    k = max(1, len(per_trial) // 10)
    return f"{1000 * statistics.fmean(per_trial[:k]):.1f}>{1000 * statistics.fmean(per_trial[-k:]):.1f}"


def make_row(arm: str, n: int, slots: int, m: Measured, stats: Stats, rss_mb: float, rss_growth_mb: float) -> dict[str, Any]:
    writes = [end - start for _, _, start, end in stats.writes]
    ordered = sorted(writes)
    row = {
        "arm": arm, "n": n, "slots": slots, "wall": m.wall, "rate": n / m.wall,
        "trial_ms": 1000 * statistics.fmean(m.compute) if m.compute else math.nan,
        "start": m.first_start,
        "idle_ms": 1000 * (m.wall - m.first_start - sum(m.compute) / slots) / n,
        "busy_ms": 1000 * m.busy / n,
        "cpu_ms": 1000 * m.cpu / n, "main_ms": 1000 * m.main_cpu / n,
        "optuna_ms": mean_ms(stats.suggest + stats.result + stats.tell, n), "optuna_growth": decile_growth(stats),
        "snap": f"{mean_ms(stats.snapshots, n):.1f} ({len(stats.snapshots)})" if arm != OPTUNA else "",
        "cb_ms": mean_ms(stats.callbacks, n) if arm == PRODUCT else "",
        "write": (f"{1000 * statistics.fmean(writes):.1f}/{1000 * ordered[int(0.95 * (len(ordered) - 1))]:.1f}"
                  if writes else ""),
        "queue": stats.queue_max if arm == PRODUCT else "",
        "rss": rss_mb, "rss_growth": rss_growth_mb,
    }
    return row


RATIOS = [("idle_ms", "idle x"), ("busy_ms", "busy x"), ("cpu_ms", "cpu x"), ("optuna_ms", "optuna x"), ("rate", "rate x"),
          ("rss", "rss x")]
COLUMNS = ["arm", "n", "slots", "wall", "rate", "trial_ms", "start", "idle_ms", "busy_ms", "cpu_ms", "main_ms", "optuna_ms",
           "optuna_growth", "snap", "cb_ms", "write", "queue", "rss_cell", *(f"{k}_x" for k, _ in RATIOS)]
HEADERS = ["arm", "trials", "slots", "wall s", "trials/s", "trial ms", "start s", "idle ms", "busy ms", "cpu ms", "main ms",
           "optuna ms", "first>last", "snap ms (#)", "cb ms", "write ms avg/p95", "q max", "RSS MB (+)", *(h for _, h in RATIOS)]
WIDTHS = [12, 6, 5, 7, 8, 8, 7, 8, 8, 7, 7, 9, 11, 12, 6, 16, 5, 12, 6, 6, 6, 8, 6, 6]


def add_ratios(row: dict[str, Any], base: dict[str, Any] | None) -> None:
    row["rss_cell"] = f"{row['rss']:.0f} (+{row['rss_growth']:.0f})"
    for key, _ in RATIOS:
        value = base.get(key) if base else None
        ok = isinstance(value, float) and value > 0 and isinstance(row[key], float)
        row[f"{key}_x"] = f"{row[key] / value:.2f}" if ok else ""


def fmt(value: Any) -> str:
    from ray_unlearn.progress import _fmt

    return _fmt(value)


def print_line(cells: list[str]) -> None:
    print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, WIDTHS))), flush=True)


def detail(arm: str, n: int, slots: int, m: Measured, stats: Stats) -> str:
    parts = [f"{arm} {n}x{1 if arm == OPTUNA else slots}:"]
    if stats.writes:
        kinds: dict[str, list[float]] = {}
        for kind, _, start, end in stats.writes:
            kinds.setdefault(kind, []).append(end - start)
        lag = max(end - queued for _, queued, _, end in stats.writes)
        busy = sum(end - start for _, _, start, end in stats.writes)
        parts.append("MLflow tasks " + ", ".join(f"{k} {len(v)} x {1000 * statistics.fmean(v):.1f} ms" for k, v in kinds.items())
                     + f"; writer busy {1000 * busy / n:.0f} ms/trial (keeps up to {n / busy:.1f} trials/s); "
                     f"{len(stats.flushes) / n:.1f} flushes of buffered epoch metrics per trial; longest submit-to-done {lag:.2f} s;")
    if m.busy > 0 and arm != OPTUNA:
        parts.append(f"main thread outside ray.wait and off its CPU (GIL, I/O, preempted) {1000 * (m.busy - m.main_cpu) / n:.0f} ms/trial;")
    if stats.snapshots:
        parts.append(f"snapshots {len(stats.snapshots)} x {1000 * statistics.fmean(stats.snapshots):.1f} ms "
                     f"(last {1000 * stats.snapshots[-1]:.1f} ms)")
    if arm == OPTUNA:
        parts.append("one process: the driver's figures are the process's minus the trial work's own time and CPU;")
    for key, value in m.extra.items():
        if isinstance(value, float) and math.isnan(value):
            continue
        parts.append(f"{key} {value:.2f}" if isinstance(value, float) else f"{key} {value}")
    return "  ".join(parts)


# --- the real trial inside and outside Ray -----------------------------------------------------

_PLAIN: dict[str, Any] = {}


def _plain_init(cache_root: str) -> None:
    import torch

    from ray_unlearn.cache import Store
    from ray_unlearn.config import load_experiment
    from ray_unlearn.references import prepare

    torch.set_num_threads(1)
    exp = load_experiment(CONFIG)
    _PLAIN.update(exp=exp, cache_root=cache_root, refs=prepare(exp, Store(cache_root), torch.device("cpu"))[0])


def _plain_trials(count: int, with_reports: bool) -> list[float]:
    exp, refs = _PLAIN["exp"], _PLAIN["refs"]
    config = exp.warm_start()[0]
    if with_reports:
        return [trial_work(exp, refs, config, _PLAIN["cache_root"], None)[0] for _ in range(count)]
    import torch

    from ray_unlearn.cache import Store
    from ray_unlearn.trial import run_repeats

    out = []
    for _ in range(count):
        start = time.perf_counter()
        run_repeats(exp, refs, config, device=torch.device("cpu"), memo=Store(_PLAIN["cache_root"]).memo(refs.key))
        out.append(time.perf_counter() - start)
    return out


def real_trial_rows(count: int, refs_cache: str, work: Path) -> list[dict[str, Any]]:
    """digits_amun.yaml's start point, count + 1 times in one slot inside Ray and in a plain process
    (before and after the Ray run, so that a load that drifts meanwhile biases neither side)."""
    import multiprocessing as mp

    import torch
    from ray import tune

    from ray_unlearn.cache import Store
    from ray_unlearn.config import load_experiment
    from ray_unlearn.references import prepare
    from ray_unlearn.search import _trainable

    exp = load_experiment(CONFIG)
    config = exp.warm_start()[0]
    refs, _ = prepare(exp, Store(refs_cache), torch.device("cpu"))
    trainable = tune.with_resources(tune.with_parameters(_trainable, exp=exp, refs=refs, cache_root=refs_cache), {"cpu": 1, "gpu": 0})
    with mp.get_context("spawn").Pool(1, initializer=_plain_init, initargs=(refs_cache,)) as pool:
        before = pool.apply(_plain_trials, (count + 1, True))[1:]
        tuner = tune.Tuner(trainable, param_space=dict(config),
                           tune_config=tune.TuneConfig(num_samples=count + 1, max_concurrent_trials=1, reuse_actors=True),
                           run_config=tune.RunConfig(name=f"real-{uuid.uuid4().hex[:6]}", storage_path=str(work / "ray_results"),
                                                     verbose=0))
        rows = sorted((dict(r.metrics or {}) for r in tuner.fit()), key=lambda r: r.get("trial_started", 0.0))
        inside = [r["trial_finished"] - r["trial_started"] for r in rows if "trial_started" in r][1:]
        after = pool.apply(_plain_trials, (count + 1, True))[1:]
        bare = pool.apply(_plain_trials, (count + 1, False))[1:]
    plain = before + after
    base = statistics.median(plain)
    out = []
    for where, times in (("plain process, same trial work", plain), ("plain process, no per-epoch report", bare),
                         ("inside Ray (Tune, 1 slot)", inside)):
        out.append({"where": where, "trials": len(times), "wall": statistics.median(times),
                    "spread": f"{min(times):.3f}-{max(times):.3f}", "ratio": statistics.median(times) / base})
    return out


# --- MLflow server -----------------------------------------------------------------------------

@contextlib.contextmanager
def mlflow_server(workdir: Path) -> Iterator[tuple[str, int]]:
    """`mlflow server` on 127.0.0.1 (one worker, SQLite behind it), as tests/conftest.py starts it."""
    import signal
    import socket
    import subprocess
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir.mkdir(parents=True, exist_ok=True)
    log = open(workdir / "mlflow-server.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{workdir / 'server.db'}",
                             "--artifacts-destination", str(workdir / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited ({proc.returncode}); see {workdir / 'mlflow-server.log'}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("mlflow server did not answer /health within 120 s") from None
                time.sleep(0.5)
        yield url, proc.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


# --- profile -----------------------------------------------------------------------------------

# Stages of the driver's loop (Ray 2.60's Tune and ours), by (file suffix, function): their cumulative time.
# A generic wrapper (Ray's client-mode hook) calls both ray.wait and the rest, so the call graph cannot
# separate waiting from working on its own; these stages do not wait.
STAGES = [
    ("tune_controller.py", "_maybe_update_trial_queue", "new trials: searcher suggest + Trial()"),
    ("optuna/optuna_search.py", "suggest", "  OptunaSearch.suggest (TPE)"),
    ("tune/experiment/trial.py", "__init__", "  Trial.__init__"),
    ("tune/registry.py", "contains", "  trainable registry lookups (GCS KV)"),
    ("tune_controller.py", "checkpoint", "experiment snapshots (TUNE_GLOBAL_CHECKPOINT_S)"),
    ("tune_controller.py", "_get_trial_checkpoints", "  every trial's state as JSON"),
    ("search_generator.py", "save_to_dir", "  the searcher pickled (the Optuna study)"),
    ("event_manager.py", "resolve_future", "actor results handled (results, saves, resets)"),
    ("tune_controller.py", "_on_training_result", "  trial results: Tune's bookkeeping, callbacks, searcher"),
    ("tune/callback.py", "on_trial_result", "  callbacks' on_trial_result (ours and Tune's)"),
    ("tune/callback.py", "on_trial_complete", "  callbacks' on_trial_complete"),
    ("ray_unlearn/search/callbacks.py", "on_trial_complete", "  ray_unlearn's on_trial_complete (tracking, searcher, progress)"),
    ("tune_controller.py", "_maybe_add_actors", "actors started or reused"),
    ("ray/actor.py", "_actor_method_call", "actor method calls (all of the above)"),
    ("ray_unlearn/workflow.py", "_start_parent", "sweep start: MLflow parent run"),
    ("ray_unlearn/tracking/sweep.py", "drop_duplicates", "sweep end: MLflow search of every child run"),
    ("ray_unlearn/search/sweep.py", "collect_rows", "sweep end: the result grid read"),
]


def print_profile(path: str, top: int = 20) -> None:
    """The driver's main thread: where its time goes when it is not waiting in ray.wait (its busy time):
    the loop's stages, and the top functions by own time."""
    import pstats

    stats = pstats.Stats(path)
    raw = stats.stats  # type: ignore[attr-defined]
    total = stats.total_tt  # type: ignore[attr-defined]
    waits = [key for key in raw if key[2] == "wait" and key[0].endswith(os.path.join("_private", "worker.py"))]
    waited = sum(raw[key][3] for key in waits)
    busy = max(total - waited, 1e-9)

    def label(key: tuple) -> str:
        file, line, name = key
        return f"{Path(file).parent.name}/{Path(file).name}:{line}({name})" if line else name

    print(f"\nprofile of the driver's main thread ({path}): Sweep.run {total:.1f} s, in ray.wait {waited:.1f} s, "
          f"busy {busy:.1f} s; share = time / busy")
    print("  stages (cumulative):")
    for suffix, name, what in STAGES:
        found = [v for k, v in raw.items() if k[2] == name and k[0].endswith(suffix)]
        if found:
            calls, _, _, ct, _ = max(found, key=lambda v: v[3])  # a name defined twice in a file: the outer one
            print(f"    {100 * ct / busy:5.1f} %  {ct:6.2f} s  {calls:>7} calls  {what}")
    print(f"  top {top} by own time:")
    for key in sorted((k for k in raw if k not in waits), key=lambda k: raw[k][2], reverse=True)[:top]:
        cc, _, tt, _, _ = raw[key]
        print(f"    {100 * tt / busy:5.1f} %  {tt:6.2f} s  {cc:>7} calls  {label(key)}")
    sys.stdout.flush()


# --- main --------------------------------------------------------------------------------------

def parse_sizes(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=parse_sizes, help="trial counts (default 100,300,1000)")
    parser.add_argument("--slots", type=parse_sizes, help="concurrent trials (default 8,32)")
    parser.add_argument("--cpus", type=int, help="logical CPUs of the local Ray instance (default 32)")
    parser.add_argument("--real-trials", type=int, help="timed AMUN trials inside and outside Ray (default 8; 0: none)")
    parser.add_argument("--tracking", choices=("sqlite", "server"), default="sqlite",
                        help="the product's MLflow store: a SQLite file (default) or an mlflow server on 127.0.0.1")
    parser.add_argument("--tune-defaults", action="store_true",
                        help="the tune-alone arm with Tune's own snapshot period and logger files (not the product's settings)")
    parser.add_argument("--arms", default=f"{TUNE_ALONE},{PRODUCT},{OPTUNA}", help="which arms (comma-separated)")
    parser.add_argument("--profile", metavar="FILE", help="one more ray-unlearn sweep (first size) under cProfile, stats to FILE")
    parser.add_argument("--quick", action="store_true", help="50 trials, 8 slots, 3 real trials: ~2-3 minutes on 2 cores")
    parser.add_argument("--smoke", action="store_true", help="6 trials, 2 slots, 1 real trial, 4 CPUs: under a minute")
    parser.add_argument("--cache-dir", help="reference cache (default: $RAY_UNLEARN_CACHE, else a temporary folder)")
    args = parser.parse_args(argv)
    preset = SMOKE if args.smoke else QUICK if args.quick else FULL  # what the command line leaves unsaid
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = set(arms) - {TUNE_ALONE, PRODUCT, OPTUNA}
    if unknown:
        parser.error(f"--arms: unknown {', '.join(sorted(unknown))}; choose from {TUNE_ALONE}, {PRODUCT}, {OPTUNA}")

    with tempfile.TemporaryDirectory(prefix="ray-unlearn-scale-") as tmp:
        work = Path(tmp)
        use_plugin(write_plugin(work / "site"))  # before anything reads the method registry, and before Ray starts
        cache_root = args.cache_dir or os.environ.get("RAY_UNLEARN_CACHE") or str(work / "cache")
        return run_bench(args, arms, work, cache_root)


def run_bench(args: argparse.Namespace, arms: list[str], work: Path, cache_root: str) -> int:
    global STATS
    import torch

    from ray_unlearn.cache import Store
    from ray_unlearn.progress import table
    from ray_unlearn.references import prepare
    from ray_unlearn.search import ensure_ray

    torch.set_num_threads(1)  # the Optuna arm's trials, like a trial's one thread in Ray
    store = Store(cache_root)
    exp = instant_experiment(1, 1, "scale-warm-up")
    refs, _ = prepare(exp, store, torch.device("cpu"))  # references trained once (digits, ~1 min) or read from the cache
    trial_work(exp, refs, {"shrink": 1e-3, "a": 0.5, "b": 3}, cache_root, None)  # imports and first-call costs
    t0 = time.perf_counter()
    ensure_ray(None, num_cpus=args.cpus)
    print(f"Ray up in {time.perf_counter() - t0:.1f} s ({args.cpus} logical CPUs on {os.cpu_count()} cores); "
          f"{METHOD} trials on digits; product tracking: {args.tracking}; tune alone: "
          f"{'Tune defaults' if args.tune_defaults else 'the product Tune settings'}", file=sys.stderr, flush=True)

    rows: list[dict[str, Any]] = []
    details: list[str] = []
    with contextlib.ExitStack() as stack:
        tracking_uri, server_pid = None, None
        if PRODUCT in arms and args.tracking == "server":
            tracking_uri, server_pid = stack.enter_context(mlflow_server(work / "mlflow-server"))
        print_line(HEADERS)
        print_line(["-" * w for w in WIDTHS])
        with instrumented():
            for slots in args.slots:
                for n in args.trials:
                    base = None
                    for arm in (a for a in (TUNE_ALONE, PRODUCT, OPTUNA) if a in arms):
                        if arm == OPTUNA and slots != args.slots[0]:
                            continue  # one process: the slot count does not apply; run once per trial count
                        STATS = Stats()
                        rss0 = rss_bytes()
                        if arm == TUNE_ALONE:
                            m = tune_alone(n, slots, refs, cache_root, work, args.tune_defaults)
                        elif arm == PRODUCT:
                            m = product(n, slots, refs, store, work, tracking_uri, server_pid)
                        else:
                            m = optuna_alone(n, refs, cache_root)
                        rss = rss_bytes()
                        row = make_row(arm, n, 1 if arm == OPTUNA else slots, m, STATS, rss / 2**20, (rss - rss0) / 2**20)
                        if arm == TUNE_ALONE:
                            base = row
                        add_ratios(row, base)
                        rows.append(row)
                        print_line([fmt(row[c]) for c in COLUMNS])
                        details.append(detail(arm, n, slots, m, STATS))
                        print(details[-1], file=sys.stderr, flush=True)
        if args.profile:  # without the wrappers, so that they are not in it
            STATS = Stats()
            product(args.trials[0], args.slots[0], refs, store, work, tracking_uri, server_pid, profile=args.profile)

    real = real_trial_rows(args.real_trials, cache_root, work) if args.real_trials > 0 else []
    print()
    print(table(rows, COLUMNS, HEADERS))
    print("\n".join(details))
    print("idle = (wall - start - sum(trial compute)/slots)/n; busy = (wall - main thread in ray.wait)/n; cpu = process CPU/n "
          "(all threads); optuna = (suggest + report + tell)/n, first>last: suggest + tell of the first and last tenth; "
          "x columns: ratio to tune alone of the same size")
    if real:
        print()
        print(table(real, ["where", "trials", "wall", "spread", "ratio"],
                    ["real trial: digits_amun start point", "trials", "median s/trial", "min-max s", "ratio to plain"]))
    if args.profile:
        print_profile(args.profile)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
