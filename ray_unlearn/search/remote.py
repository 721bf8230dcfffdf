"""Ray tasks beside the sweep: the re-check rung's runs (`recheck_runner`) and the audit's population
models (`population_runner`), each with the sweep's resources and the shared cache."""

from __future__ import annotations

from typing import Any, Sequence

from .. import interrupt
from ..config import Experiment
from .callbacks import last_line
from .cluster import ensure_ray, trial_device


def _prepare_seed(exp: Experiment, cache_root: str) -> Any:
    """One re-check seed's references in a Ray worker (trained once, then read from the shared cache)."""
    import torch

    from ..cache import Store
    from ..references import prepare

    torch.set_num_threads(max(1, int(exp.tune.resources.cpu)))
    return prepare(exp, Store(cache_root), trial_device(exp.tune.resources.gpu))[0]


def _recheck_job(exp: Experiment, refs: Any, config: dict, cache_root: str) -> Any:
    """One candidate on one re-check seed, in a Ray worker."""
    import torch

    from ..cache import Store
    from ..recheck import run_job

    torch.set_num_threads(max(1, int(exp.tune.resources.cpu)))
    return run_job(exp, refs, config, device=trial_device(exp.tune.resources.gpu), memo=Store(cache_root).memo(refs.key))


def recheck_runner(cache_root: str) -> Any:
    """A re-check `Runner`: every seed's references prepared in parallel (Ray tasks, cached), then every
    (candidate, seed) run as a Ray task with the sweep's resources; results in the order they finish."""

    def run(exp: Experiment, jobs: Sequence[Any]) -> Any:
        import ray

        from ..recheck import SeedResult

        res = exp.tune.resources
        prepare_seed = ray.remote(num_cpus=res.cpu, num_gpus=res.gpu)(_prepare_seed)
        references = {seed: prepare_seed.remote(exp.reseeded(seed), cache_root) for seed in sorted({j.seed for j in jobs})}
        job_task = ray.remote(num_cpus=res.cpu, num_gpus=res.gpu, max_retries=exp.tune.max_failures, max_calls=0)(_recheck_job)
        pending = {job_task.remote(exp.reseeded(j.seed), references[j.seed], dict(j.config), cache_root): j for j in jobs}
        try:
            while pending and not interrupt.requested():
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    job = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as err:  # noqa: BLE001 - a run that raised fails its seed, not the sweep
                        result = SeedResult("failed", {}, last_line(str(err)))
                    yield job, result
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    return run


def _train_member(exp: Experiment, refs: Any, member: Any, cache_root: str) -> tuple[Any, bool]:
    """One audit population model in a Ray worker (trained, or read from the shared cache)."""
    import torch

    from ..cache import Store
    from ..tasks import get_task

    torch.set_num_threads(max(1, int(exp.tune.resources.cpu)))
    return get_task(exp.task).audit_member(exp, refs, member, Store(cache_root), trial_device(exp.tune.resources.gpu))


def population_runner(address: str | None = None, progress: Any = None) -> Any:
    """An audit `Runner` that trains the missing population models as Ray tasks with the sweep's
    resources (`tune.resources`: fractional GPUs pack several on one device), members already in
    the cache are read on the driver."""

    def run(exp: Experiment, refs: Any, members: Sequence[Any], cache_root: str) -> list[Any]:
        import ray

        from ..cache import Store

        store = Store(cache_root)
        out: list[Any] = [None] * len(members)
        missing = []
        for i, m in enumerate(members):
            found = store.get(m.key(refs.key, exp), ["stats"])
            if found is not None:
                out[i] = found[0]["stats"]
            else:
                missing.append(i)
        if not missing:
            return out
        ensure_ray(address)
        res = exp.tune.resources
        # max_calls=0: a worker trains member after member (Ray's default for GPU tasks is a fresh process,
        # CUDA context and upload per task)
        task = ray.remote(num_cpus=res.cpu, num_gpus=res.gpu, max_retries=2, max_calls=0)(_train_member)
        exp_ref, refs_ref = ray.put(exp), ray.put(refs)
        pending = {task.remote(exp_ref, refs_ref, members[i], cache_root): i for i in missing}
        done = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                i = pending.pop(ref)
                out[i], _trained = ray.get(ref)
                done += 1
                if progress is not None:
                    progress(done, len(missing), members[i])
        return out

    return run
