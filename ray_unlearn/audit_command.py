"""`ray-unlearn audit` (and `tune --audit K`): audit the best configurations of a finished sweep.

Reads the K best runs from MLflow, trains (or reads from the cache) the populations the audit
needs as Ray tasks, prints the ranked audit table with its sanity rows, and writes the audit's
metrics and files onto each audited run and the table onto the sweep's parent run.
"""

from __future__ import annotations

import io
import math
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from .config import Experiment, parse_experiment, parse_yaml_text
from .errors import ConfigError, TrackingError
from .progress import table
from .tasks import get_task

COLUMNS = ["rank", "configuration", "method", "sweep_score", "audit_forget_quality", "audit_ceiling",
           "audit_quality_ratio", "audit_score", "audit_auc", "audit_retain_acc", "audit_test_acc"]


def audited_runs(uri: str | None, experiment: str, top: int) -> list[dict[str, Any]]:
    """The `top` best finished trials of the newest sweep of `experiment` (status ok): those that survived
    its re-check first, by their robust score, then the rest by their one-seed score."""
    from .objective import WORST_SCORE
    from .tracking import ROBUST_SCORE, latest_sweep, ranked_runs

    parent = latest_sweep(uri, experiment)
    wanted = max(4 * top, top + 8)
    robust = [r for r in ranked_runs(uri, experiment, top=wanted, metric=ROBUST_SCORE, parent_id=parent)
              if r["status"] == "ok" and r["metrics"][ROBUST_SCORE] > WORST_SCORE]
    seen = {r["run_id"] for r in robust}
    rows = robust + [r for r in ranked_runs(uri, experiment, top=wanted + len(seen), parent_id=parent)
                     if r["status"] == "ok" and r["run_id"] not in seen]
    if not rows:
        raise TrackingError(f"no finished trials with status ok in the newest sweep of experiment {experiment!r} ({uri})")
    return rows[:top]


def experiment_of(uri: str | None, run: Mapping[str, Any]) -> Experiment:
    from .tracking import read_run_config

    return parse_experiment(parse_yaml_text(read_run_config(uri, run["run_id"]), f"run {run['run_id']} config.yaml"),
                            source=f"config of run {run['run_id']}")


def audit_sweep(exp: Experiment, refs: Any, runs: Sequence[Mapping[str, Any]], *, uri: str | None, models: int,
                cache_root: str, address: str | None, device: Any, forget_seeds: Sequence[int] = (), out: Any = sys.stdout) -> int:
    """Audit `runs` (rows of `ranked_runs`), print the table, log to MLflow; 0, or 1 when the audit is void."""

    from .plots import epsilon_histogram
    from .search import population_runner
    from .tracking import log_audit

    if models < 4:
        raise ConfigError("--models", f"an audit needs at least 4 models per population, got {models}", value=models)
    total = [0]

    def progress(done: int, missing: int, member: Any) -> None:
        total[0] = missing
        print(f"\raudit: trained {done}/{missing} population models ({member.kind}, seed {member.seed})", end="", file=sys.stderr, flush=True)

    configurations = [(r["run_name"], r["method"], r["hyperparameters"]) for r in runs]
    report = get_task(exp.task).audit(exp, refs, configurations, models=models, cache_root=cache_root,
                                      runner=population_runner(address, progress), device=device)
    if total[0]:
        print(file=sys.stderr)
    rows = []
    for sanity in (report.original, report.ceiling):
        rows.append({"rank": "-", "configuration": sanity.name, "method": "-", **sanity.metrics()})
    entries = []
    for i, (run, row) in enumerate(zip(runs, report.rows), start=1):
        metrics = row.metrics()
        rows.append({"rank": i, "configuration": run["run_name"], "method": run["method"],
                     "sweep_score": run["metrics"].get("score", math.nan), **metrics})
        files = {}
        with tempfile.TemporaryDirectory() as tmp:
            png = epsilon_histogram(row.epsilons, Path(tmp) / "epsilon_histogram.png",
                                    f"{run['run_name']}: F = {row.forget_quality:.3f} (ceiling {row.ceiling:.3f}), N = {row.models}")
            files["epsilon_histogram.png"] = png.read_bytes()
        files["confidences.npz"] = confidences_npz(row, report, refs.splits.forget.y.cpu().numpy())
        entries.append({"run_id": run["run_id"], "metrics": metrics, "files": files})
    ranked = sorted(rows[2:], key=lambda r: -r["audit_score"])
    for rank, r in enumerate(ranked, start=1):
        r["rank"] = rank
    shown = rows[:2] + ranked
    text = table(shown, COLUMNS)
    header = (f"audit of {len(runs)} configuration(s) of {exp.experiment}: {models} unlearned and {models} retrained models each "
              f"({report.retrained_now} trained now, the rest from the cache)")
    print(f"\n{header}\n{text}", file=out)
    if report.void:
        print(f"audit VOID: {report.void}", file=out)
    report_text = f"{header}\n{text}\n" + (f"audit VOID: {report.void}\n" if report.void else "")
    if forget_seeds:
        report_text += "\n" + confirm_table(exp, configurations, forget_seeds, cache_root, device, out)
    parent_id = runs[0].get("parent_id")
    log_audit(uri, exp.experiment, entries, parent_id=parent_id, table_text=report_text, table_rows=shown, columns=COLUMNS)
    print("rank by it: ray-unlearn best " + exp.experiment + " --metric audit_score", file=out)
    if parent_id:
        from .tracking import audit_links

        view, compare = audit_links(uri, exp.experiment, parent_id, [r["run_id"] for r in runs])
        print(f"runs table (with the audit's columns): {view}", file=out)
        if len(runs) > 1:
            print(f"compare the audited runs: {compare}", file=out)
    return 1 if report.void else 0


def confidences_npz(row: Any, report: Any, labels: Any) -> bytes:
    """Everything F is computed from, so anyone can recompute it (docs/metrics.md#forgetting-quality): both
    populations' logit-scaled confidences (models x forget examples), the ceiling population's, each
    model's retain and test accuracy, the forget labels, the per-example epsilons and the logged figures."""
    import numpy as np

    retrained, ceiling = report.retrained, report.ceiling
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        unlearned_confidence=row.phi, retrained_confidence=retrained.phi, ceiling_confidence=ceiling.phi,
        unlearned_retain_acc=row.retain_accs, unlearned_test_acc=row.test_accs,
        retrained_retain_acc=retrained.retain_accs, retrained_test_acc=retrained.test_accs,
        ceiling_retain_acc=ceiling.retain_accs, ceiling_test_acc=ceiling.test_accs,
        forget_labels=labels, epsilon=row.epsilons,
        forget_quality=row.forget_quality, audit_score=row.score, audit_ceiling=row.ceiling,
    )
    return buf.getvalue()


def confirm_table(exp: Experiment, configurations: Sequence[tuple[str, str, Mapping[str, Any]]], seeds: Sequence[int],
                  cache_root: str, device: Any, out: Any) -> str:
    """The held-out confirmation (test split, mean ± spread over `seeds`), printed and returned."""
    from .cache import Store
    from .confirm import HEADERS, held_out

    rows = held_out(exp, configurations, seeds, Store(cache_root), device,
                    progress=lambda line: print(f"\r{line:<70}", end="", file=sys.stderr, flush=True))
    print(file=sys.stderr)
    text = (f"held-out confirmation: seeds {', '.join(map(str, seeds))} (data split, forget set, models and method "
            f"seed; never seen by the sweep), test split, mean ± spread\n"
            + table(rows, ["configuration", *HEADERS.values(), "failed"]))
    print(f"\n{text}", file=out)
    return text + "\n"


def warn_seen_seeds(exp: Experiment, seeds: Sequence[int], out: Any = sys.stderr) -> None:
    """A held-out seed the sweep's re-check used is not held out: say so (the sweep's own seed is refused)."""
    used = set(exp.tune.recheck.seeds) & set(seeds) if exp.tune.recheck.top else set()
    if used:
        print(f"warning: --forget-seeds {', '.join(map(str, sorted(used)))}: the sweep's re-check ran on "
              f"{'this seed' if len(used) == 1 else 'these seeds'} (tune.recheck.seeds), so its figures are not held out",
              file=out)


def parse_seeds(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError("--forget-seeds", f"expected comma-separated integers such as 1,2,3, got {text!r}", value=text) from None
