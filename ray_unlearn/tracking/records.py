"""Reading a sweep's child runs back: grouped by trial, the run a trial's events went to, re-check results."""

from __future__ import annotations

from typing import Any, Iterable

from .vocabulary import RECHECK_MESSAGE, RECHECK_STATUS, TRIAL_ID


def recheck_seeds(run: Any) -> dict[int, dict[str, Any]]:
    """The re-check results recorded on a child run: seed -> {status, metrics, message}."""
    found = {}
    for tag, status in run.data.tags.items():
        if tag.startswith(RECHECK_STATUS) and tag[len(RECHECK_STATUS):].isdigit():
            seed = int(tag[len(RECHECK_STATUS):])
            suffix = f"_s{seed}"
            metrics = {k[len("recheck_"):-len(suffix)]: v for k, v in run.data.metrics.items()
                       if k.startswith("recheck_") and k.endswith(suffix)}
            found[seed] = {"status": status, "metrics": metrics, "message": run.data.tags.get(f"{RECHECK_MESSAGE}{seed}", "")}
    return found


def number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def by_trial(runs: Iterable[Any]) -> dict[str, list]:
    groups: dict[str, list] = {}
    for run in runs:
        if TRIAL_ID in run.data.tags:
            groups.setdefault(run.data.tags[TRIAL_ID], []).append(run)
    return groups


def pick(runs: list) -> Any:
    """Of several child runs of one trial, the one its events were written to: with params, ended, newest."""
    return max(runs, key=lambda r: (bool(r.data.params), r.info.status in ("FINISHED", "FAILED"), r.info.start_time or 0))
