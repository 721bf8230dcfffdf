"""Optuna as Ray Tune's searcher: samplers Tune can pickle, trials learnt without running them (a
resumed sweep's), the `start:` points first, and the define-by-run space of a multi-method sweep."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import optuna
from ray.tune.search.optuna import OptunaSearch

from ..config import Experiment
from ..errors import ConfigError
from ..objective import targets


class _PicklableLocks:
    """Mixin for Optuna samplers that hold a thread lock (NSGAIISampler since optuna 5.1).

    Ray Tune pickles its searcher when the Tuner is built and at every experiment
    snapshot; a lock cannot be pickled, so it travels as a marker and a new lock is
    made on unpickling (a lock's held state means nothing in another process).
    """

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for key, value in state.items():
            if isinstance(value, _LOCK_TYPES):
                state[key] = _LockMarker(reentrant=isinstance(value, _RLOCK_TYPE))
        return state

    def __setstate__(self, state: dict) -> None:
        import threading

        for key, value in state.items():
            if isinstance(value, _LockMarker):
                state[key] = threading.RLock() if value.reentrant else threading.Lock()
        self.__dict__.update(state)


@dataclasses.dataclass(frozen=True)
class _LockMarker:
    reentrant: bool


def _lock_types() -> tuple[type, type]:
    import threading

    return type(threading.Lock()), type(threading.RLock())


_LOCK_TYPE, _RLOCK_TYPE = _lock_types()
_LOCK_TYPES = (_LOCK_TYPE, _RLOCK_TYPE)


class PicklableTPESampler(_PicklableLocks, optuna.samplers.TPESampler):
    pass


class PicklableNSGAIISampler(_PicklableLocks, optuna.samplers.NSGAIISampler):
    pass


class PicklableRandomSampler(_PicklableLocks, optuna.samplers.RandomSampler):
    pass


def make_sampler(kind: str, seed: int, objectives: int) -> optuna.samplers.BaseSampler:
    """The Optuna sampler a sweep uses, in a form Ray Tune can pickle (whatever the optuna release)."""
    if kind == "random":
        return PicklableRandomSampler(seed=seed)
    if objectives > 1:
        return PicklableNSGAIISampler(seed=seed)
    return PicklableTPESampler(seed=seed)


@dataclasses.dataclass(frozen=True)
class Finished:
    """A trial the sweep already has (read back from MLflow on resume): told to Optuna, never run again."""

    config: dict[str, Any]
    values: tuple[float, ...] | None  # the searcher's targets, or None when the trial failed


class SweepSearch(OptunaSearch):
    """OptunaSearch that also learns trials without running them and results that arrive late.

    `add_finished` adds a finished trial to the study (a resumed sweep's, from MLflow), for
    define-by-run spaces too (several methods); `on_trial_complete` tells Optuna the result of a
    trial Tune first reported as failed and then retried (a node lost mid-trial), which plain
    OptunaSearch drops with a warning.
    """

    def __init__(self, *args: Any, distributions: dict[str, Any], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._distributions = distributions

    def add_finished(self, config: dict[str, Any], values: Sequence[float] | None) -> None:
        params = {k: v for k, v in config.items() if k in self._distributions}
        dists = {k: self._distributions[k] for k in params}
        if values is None:
            trial = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, params=params, distributions=dists)
        elif isinstance(self.metric, list):
            trial = optuna.trial.create_trial(params=params, distributions=dists, values=list(values))
        else:
            trial = optuna.trial.create_trial(params=params, distributions=dists, value=values[0])
        self._ot_study.add_trial(trial)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials:  # a retried trial: its first attempt was told as failed
            ot_trial = self._ot_trials.get(trial_id)
            metrics = self.metric if isinstance(self.metric, list) else [self.metric]
            if result and not error and ot_trial is not None and all(m in result for m in metrics):
                self.add_finished(dict(ot_trial.params), [float(result[m]) for m in metrics])
            return
        super().on_trial_complete(trial_id, result=result, error=error)


def distributions(exp: Experiment) -> dict[str, Any]:
    """Every Optuna parameter a trial config of `exp` may hold, with its distribution."""
    if not exp.multi:
        return {name: dim.to_optuna() for name, dim in exp.search.items()}
    out: dict[str, Any] = {"method": optuna.distributions.CategoricalDistribution([m.name for m in exp.methods])}
    for m in exp.methods:
        out.update({f"{m.name}.{key}": dim.to_optuna() for key, dim in m.search.items()})
    return out


def build_searcher(exp: Experiment, finished: Sequence[Finished] = (), rerun: Sequence[dict[str, Any]] = ()) -> Any:
    """The sweep's searcher: Optuna over `search:`, the `start:` points first. A resumed sweep passes the
    trials it has (`finished`: learnt, not run) and those an interruption cut short (`rerun`: run first)."""
    if not exp.searched():
        raise ConfigError("search", "is empty: nothing to tune; add hyperparameters to search, or use `ray-unlearn run`")
    goals = targets(exp.objective)
    # a resumed sweep's sampler starts on another seed: the same seed would propose its first trials again
    sampler = make_sampler(exp.tune.sampler, exp.tune.seed + len(finished), len(goals))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    metric = [m for m, _ in goals] if len(goals) > 1 else goals[0][0]
    mode = [d for _, d in goals] if len(goals) > 1 else goals[0][1]
    dists = distributions(exp)
    space: Any = MethodChoiceSpace(exp) if exp.multi else dict(dists)
    seen = [f.config for f in finished]
    points = [dict(c) for c in rerun] + [p for p in exp.warm_start() if p not in seen and p not in rerun]
    searcher = SweepSearch(space=space, metric=metric, mode=mode, sampler=sampler, points_to_evaluate=points or None,
                           distributions=dists)
    for f in finished:
        searcher.add_finished(f.config, f.values)
    return searcher


class MethodChoiceSpace:
    """Optuna define-by-run space: the method as a categorical choice, each method's
    hyperparameters conditional on it. A class, not a closure: Tune pickles its searcher."""

    def __init__(self, exp: Experiment):
        self.exp = exp

    def __call__(self, trial: Any) -> None:
        method = trial.suggest_categorical("method", [m.name for m in self.exp.methods])
        for key, dim in self.exp.spec(method).search.items():
            dim.suggest(trial, f"{method}.{key}")
