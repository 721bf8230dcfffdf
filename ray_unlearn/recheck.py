"""The re-check rung: a sweep's best configurations re-run on seeds the sweep never used.

A one-seed sweep ranks on one split, one forget set and one pair of reference models, so part of
what makes its winner is luck (the winner's curse). The re-check re-runs the K best on each
re-check seed, which moves what the held-out confirmation moves (`Experiment.reseeded`: data
split, forget set, reference models, method seed), and ranks them by the mean score over the
sweep's seed and the re-check seeds: the robust score, `recheck_score_mean`. A configuration that
fails on any seed ranks below every one that survived.

Runs go through a `Runner`: `sequential_runner` here (in-process, bench/quality.py), or the sweep's
Ray tasks (`search.recheck_runner`), so `ray-unlearn tune` and the bench share this code. No torch
at import: config validation and the tracker read `SeedResult` and `Candidate`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from .config import Experiment
from .objective import WORST_SCORE
from .tracking.vocabulary import ROBUST_SCORE, ROBUST_STD

logger = logging.getLogger(__name__)

STATUS_OK = "ok"  # as tasks.outcome.STATUS_OK; a failed run carries the trial's own status


@dataclasses.dataclass(frozen=True)
class Job:
    """One candidate configuration on one re-check seed."""

    trial_id: str
    seed: int
    config: Mapping[str, Any]  # the trial config (`Experiment.resolve` reads method and hyperparameters from it)


@dataclasses.dataclass(frozen=True)
class SeedResult:
    status: str
    metrics: Mapping[str, float]
    message: str = ""

    @property
    def score(self) -> float:
        return float(self.metrics.get("score", WORST_SCORE)) if self.status == STATUS_OK else WORST_SCORE


@dataclasses.dataclass
class Candidate:
    """A configuration of the sweep, its one-seed result and its results on the re-check seeds."""

    trial_id: str
    run_name: str
    method: str
    config: Mapping[str, Any]
    sweep_seed: int
    sweep: SeedResult
    results: dict[int, SeedResult] = dataclasses.field(default_factory=dict)

    def all_results(self) -> dict[int, SeedResult]:
        return {self.sweep_seed: self.sweep, **self.results}

    @property
    def failed(self) -> bool:
        return any(r.status != STATUS_OK for r in self.all_results().values())

    def robust(self) -> tuple[float, float]:
        """(mean, population spread) of the score over every seed; WORST_SCORE if any seed failed."""
        if self.failed:
            return WORST_SCORE, math.nan
        scores = [r.score for r in self.all_results().values()]
        return statistics.fmean(scores), statistics.pstdev(scores)


Runner = Callable[[Experiment, Sequence[Job]], Iterable[tuple[Job, SeedResult]]]


def candidates(exp: Experiment, rows: Sequence[Mapping[str, Any]], top: int) -> list[Candidate]:
    """The `top` best finished trials of a sweep (`rows` best first, as `search.collect_rows` gives them), and
    the trials of its `start:` points wherever they ranked: a start point is the file's robust incumbent, so a
    trial that beat it on one seed must beat it on the robust score too."""
    finished = [r for r in rows if r.get("status") == STATUS_OK]
    starts = [exp.config_for(m.name, m.complete(m.start_point())) for m in exp.methods if m.start_point()]
    picked = finished[:top] + [r for r in finished[top:] if exp.config_for(r["method"], r["hyperparameters"]) in starts]
    return [
        Candidate(trial_id=str(r["trial_id"]), run_name=str(r["run_name"]), method=str(r["method"]),
                  config=exp.config_for(r["method"], r["hyperparameters"]), sweep_seed=exp.data.seed,
                  sweep=SeedResult(STATUS_OK, {k: float(v) for k, v in r.items() if _is_number(v)}))
        for r in picked
    ]


def recheck(exp: Experiment, chosen: Sequence[Candidate], *, runner: Runner,
            done: Mapping[tuple[str, int], SeedResult] | None = None,
            on_result: Callable[[Job, SeedResult], None] | None = None) -> list[Candidate]:
    """Run every (candidate, re-check seed) not in `done` through `runner`; the candidates, robust best first.

    `done` holds results recorded earlier (a resumed sweep's, read back from MLflow): they are
    reused, never run again. `on_result` sees each new result as it arrives (to record it at once).
    """
    done = done or {}
    by_id = {c.trial_id: c for c in chosen}
    jobs = []
    for c in chosen:
        for seed in exp.tune.recheck.seeds:
            if (c.trial_id, seed) in done:
                c.results[seed] = done[(c.trial_id, seed)]
            else:
                jobs.append(Job(c.trial_id, seed, c.config))
    if jobs:
        for job, result in runner(exp, jobs):
            by_id[job.trial_id].results[job.seed] = result
            if on_result is not None:
                on_result(job, result)
    return ranked(chosen)


def ranked(chosen: Iterable[Candidate]) -> list[Candidate]:
    """Best robust score first; ties keep the sweep's order."""
    return sorted(chosen, key=lambda c: -c.robust()[0])


def rank_rows(rows: Sequence[Mapping[str, Any]], chosen: Sequence[Candidate]) -> list[dict[str, Any]]:
    """The sweep's rows with each candidate's robust score, re-ordered: the candidates that survived
    every seed (best robust score first), then the trials never re-checked (in their order), then
    the candidates that failed on a re-check seed."""
    robust = {c.trial_id: c.robust() for c in chosen}
    failed = {c.trial_id for c in chosen if c.failed}
    survived = [c.trial_id for c in ranked(chosen) if c.trial_id not in failed]
    by_id = {}
    for row in rows:
        out = dict(row)
        if row["trial_id"] in robust:
            out[ROBUST_SCORE], out[ROBUST_STD] = robust[row["trial_id"]]
        by_id[row["trial_id"]] = out
    first = [by_id[t] for t in survived]
    rest = [by_id[r["trial_id"]] for r in rows if r["trial_id"] not in robust]
    last = [by_id[c.trial_id] for c in ranked(chosen) if c.trial_id in failed]
    return first + rest + last


def seed_table(candidate: Candidate, columns: Sequence[str]) -> list[dict[str, Any]]:
    """One row per seed (the sweep's first), for the candidate's `recheck/` table."""
    rows = []
    for seed, result in candidate.all_results().items():
        role = "sweep" if seed == candidate.sweep_seed else "re-check"
        rows.append({"seed": seed, "role": role, "status": result.status,
                     **{k: result.metrics[k] for k in columns if k in result.metrics}, "message": result.message})
    return rows


def run_job(exp: Experiment, refs: Any, config: Mapping[str, Any], *, device: Any, memo: Any = None) -> SeedResult:
    """One configuration on `exp`'s seed (`exp` already reseeded), as a sweep trial runs it (`tune.repeats` included)."""
    from .trial import run_repeats

    result = run_repeats(exp, refs, config, device=device, memo=memo)
    return SeedResult(result.status, {k: float(v) for k, v in result.metrics.items() if _is_number(v)}, result.message)


def sequential_runner(store: Any, device: Any, progress: Callable[[str], None] | None = None) -> Runner:
    """Every job in this process, one after another; each seed's references prepared once (cached in `store`)."""

    def run(exp: Experiment, jobs: Sequence[Job]) -> Iterator[tuple[Job, SeedResult]]:
        from . import interrupt
        from .references import prepare

        refs: dict[int, Any] = {}
        for job in jobs:
            if interrupt.requested():
                return
            seeded = exp.reseeded(job.seed)
            if job.seed not in refs:
                refs[job.seed] = prepare(seeded, store, device)[0]
            result = run_job(seeded, refs[job.seed], job.config, device=device, memo=store.memo(refs[job.seed].key))
            if progress is not None:
                progress(f"re-check {job.trial_id} on seed {job.seed}: {result.status} score {result.score:.3f}")
            yield job, result

    return run


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
