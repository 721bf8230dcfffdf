"""The sweep: Ray Tune schedules trials, Optuna proposes hyperparameters.

The only package that imports ray (and ray.tune). References and data reach trials once through the
object store (`trainable.Shared`), never retrained; actors are reused so torch import and set-up are
paid once per worker; Tune callbacks hand every event to `tracking.SweepTracker` on the driver.

- `cluster`: connect to (or start) Ray, fail fast on a dead address, the trial's device
- `trainable`: one Tune trial around the plain-PyTorch `trial.run_repeats`
- `callbacks`: the driver's per-trial line, the MLflow hand-off, trial names
- `searcher`: Optuna as Tune's searcher (picklable samplers, resumed trials, the multi-method space)
- `sweep`: `run_sweep`, resume from MLflow, the rows a sweep ends with
- `remote`: Ray tasks beside the sweep: the re-check rung's runs and the audit's population models
"""

import logging
import os

# Ray's newer console output prints a table per trial result; we print one line per trial instead.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Tune's experiment snapshots grow with the trials (every trial's state, the pickled Optuna study) and
# nothing reads them: --resume reads MLflow (run_sweep). One a minute, as a record for Tune's own tools.
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "60")
# A stop signal is ours to handle (interrupt.py): the sweep stops the same way for SIGINT, SIGTERM and SIGHUP.
os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
# Tune's own per-result files (result.json, progress.csv, a TensorBoard event file) duplicate what
# MLflow records and cost the driver ~1 s of CPU per 32 digits trials (bench/sweep.py trials; driver
# CPU 9.8 s -> 8.6 s in one run), CPU the trials need on a small machine. Set it to 0 to get them back.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
if os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "1":  # the result grid then warns once per trial about them
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)

from .callbacks import TrialNamer, _ProgressCallback, _TrackingCallback  # the callbacks: bench/scale.py times them
from .cluster import CONNECT_TIMEOUT, CPU_FALLBACK, cluster_endpoint, default_concurrency, ensure_ray, trial_device, wait_for_cluster
from .remote import population_runner, recheck_runner
from .searcher import Finished, MethodChoiceSpace, SweepSearch, build_searcher, distributions, make_sampler
from .sweep import SweepOutcome, build_scheduler, collect_rows, resumed_trials, run_sweep, sweep_path
from .trainable import INFO_KEYS, RAY_KEYS, Shared, _trainable, resolve

__all__ = [
    "CONNECT_TIMEOUT", "CPU_FALLBACK", "INFO_KEYS", "RAY_KEYS", "Finished", "MethodChoiceSpace", "Shared", "SweepOutcome",
    "SweepSearch", "TrialNamer", "_ProgressCallback", "_TrackingCallback", "_trainable", "build_scheduler", "build_searcher",
    "cluster_endpoint", "collect_rows", "default_concurrency", "distributions", "ensure_ray", "make_sampler",
    "population_runner", "recheck_runner", "resolve", "resumed_trials", "run_sweep", "sweep_path", "trial_device",
    "wait_for_cluster",
]
