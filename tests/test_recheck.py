"""The re-check rung: the sweep's best re-run on seeds it never used, ranked by the mean score.

The ranking rules on hand-made numbers first; then real sweeps (`ray-unlearn tune` in a subprocess,
a real local Ray instance, a real MLflow server) of a method built for the test, whose quality
depends on the seed by construction: `lucky` retrains fully on the sweep's seed and does nothing
on any other, `steady` retrains briefly on every seed, `fragile` retrains fully on the sweep's seed
and diverges on any other. The one-seed winner is lucky (or fragile, the same model); the robust
winner is steady, and fragile ranks last.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import yaml

from .conftest import digits_config, run_cli
from .faults.helpers import trial_runs, write_config

SEED_LUCK = '''
    import dataclasses
    import time

    from ray_unlearn.hparams import hp
    from ray_unlearn.methods.base import Method
    from ray_unlearn.methods.retrain import reinitialise
    from ray_unlearn.train import OptimSpec, batches, fit


    @dataclasses.dataclass(frozen=True)
    class SeedLuckParams:
        plan: str = hp("steady", choices=("lucky", "steady", "fragile"), help="how the result depends on the seed")
        pause: float = hp(0.0, ge=0.0, help="seconds to wait on any seed but the sweep's")


    class SeedLuck(Method):
        """Retrain on the retain set for 30 epochs (lucky, fragile: on seed 0 only) or 5 (steady: on every seed)."""
        name = "seed_luck"
        summary = "A test method whose quality depends on the seed by construction."
        paper = "tests/test_recheck.py"
        Params = SeedLuckParams

        def unlearn(self, model, data, hp, ctx):
            if ctx.seed != 0:
                time.sleep(hp.pause)
                if hp.plan == "fragile":
                    raise FloatingPointError("diverged on purpose off the sweep's seed")
            if hp.plan == "steady" or ctx.seed == 0:
                reinitialise(model, ctx.seed)
                epochs = 5 if hp.plan == "steady" else 30
                fit(model, lambda: batches(data.retain, 64, ctx.generator), OptimSpec(lr=0.05), epochs=epochs)
            ctx.report(1, model, loss=0.0)
            return model
'''


@pytest.fixture(scope="module")
def seed_luck(tmp_path_factory) -> dict:
    """The method as an installed plugin (a real dist-info with entry points on PYTHONPATH)."""
    root = tmp_path_factory.mktemp("seedluck-site")
    (root / "seedluck").mkdir()
    (root / "seedluck" / "__init__.py").write_text("")
    (root / "seedluck" / "methods.py").write_text(textwrap.dedent(SEED_LUCK))
    info = root / "seedluck-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: seedluck\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[ray_unlearn.methods]\nseed_luck = seedluck.methods:SeedLuck\n")
    return {"PYTHONPATH": os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}


def luck_config(name: str, seeds: list[int], pause: float = 0.0) -> dict:
    return digits_config(
        experiment=name, method="seed_luck", fixed={"pause": pause},
        search={"plan": {"choice": ["lucky", "steady", "fragile"]},
                "points_to_evaluate": [{"plan": "lucky"}, {"plan": "steady"}, {"plan": "fragile"}]},
        objective={"kind": "avg_gap", "max_val_drop": None, "collapse_patience": 0},
        tune={"num_samples": 3, "max_concurrent": 2, "resources": {"cpu": 1, "gpu": 0},
              "recheck": {"top": 3, "seeds": seeds}},
    )


# --- the ranking, on hand-made numbers -----------------------------------------------------------

def _candidate(trial_id: str, sweep: float, others: dict[int, tuple[str, float]]):
    from ray_unlearn.recheck import Candidate, SeedResult

    c = Candidate(trial_id, trial_id, "m", {}, 0, SeedResult("ok", {"score": sweep}))
    c.results = {seed: SeedResult(status, {"score": score} if status == "ok" else {}) for seed, (status, score) in others.items()}
    return c


def test_the_robust_score_is_the_mean_over_every_seed_and_a_failure_ranks_below_every_survivor():
    from ray_unlearn.objective import WORST_SCORE
    from ray_unlearn.recheck import rank_rows

    lucky = _candidate("lucky", -1.0, {10: ("ok", -30.0), 20: ("ok", -29.0)})  # mean -20
    steady = _candidate("steady", -4.0, {10: ("ok", -5.0), 20: ("ok", -6.0)})  # mean -5
    fragile = _candidate("fragile", -0.5, {10: ("diverged", 0.0), 20: ("ok", -0.5)})
    assert lucky.robust() == (pytest.approx(-20.0), pytest.approx(math.sqrt(((19 ** 2) + (10 ** 2) + (9 ** 2)) / 3)))
    assert steady.robust()[0] == pytest.approx(-5.0)
    assert fragile.robust()[0] == WORST_SCORE
    rows = [{"trial_id": t, "score": s} for t, s in (("fragile", -0.5), ("lucky", -1.0), ("steady", -4.0), ("unchecked", -7.0))]
    order = [r["trial_id"] for r in rank_rows(rows, [fragile, lucky, steady])]
    assert order == ["steady", "lucky", "unchecked", "fragile"]


def test_recheck_runs_only_what_is_not_recorded_and_reports_each_result():
    from ray_unlearn.config import parse_experiment
    from ray_unlearn.recheck import SeedResult, recheck

    exp = parse_experiment(digits_config(tune={"recheck": {"top": 2, "seeds": [10, 20]}}))
    a, b = _candidate("a", -1.0, {}), _candidate("b", -2.0, {})
    ran, seen = [], []

    def runner(exp, jobs):
        for job in jobs:
            ran.append((job.trial_id, job.seed))
            yield job, SeedResult("ok", {"score": -3.0})

    out = recheck(exp, [a, b], runner=runner, done={("a", 10): SeedResult("ok", {"score": -1.0})},
                  on_result=lambda job, result: seen.append((job.trial_id, job.seed)))
    assert sorted(ran) == [("a", 20), ("b", 10), ("b", 20)] and sorted(seen) == sorted(ran)
    assert [c.trial_id for c in out] == ["a", "b"]
    assert a.robust()[0] == pytest.approx((-1.0 - 1.0 - 3.0) / 3) and b.robust()[0] == pytest.approx(-8.0 / 3)


def test_a_recheck_seed_equal_to_the_sweep_seed_is_a_config_error():
    from ray_unlearn.config import parse_experiment
    from ray_unlearn.errors import ConfigError

    with pytest.raises(ConfigError, match=r"tune.recheck.seeds\[1\]: seed 0 is the sweep's own data.seed"):
        parse_experiment(digits_config(tune={"recheck": {"top": 2, "seeds": [10, 0]}}))
    with pytest.raises(ConfigError, match=r"tune.recheck.seeds\[1\]: seed 10 is listed twice"):
        parse_experiment(digits_config(tune={"recheck": {"top": 2, "seeds": [10, 10]}}))


# --- real sweeps ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_recheck_moves_best_to_the_configuration_with_the_best_mean(tmp_path, mlflow_server, cache_dir, digits_refs, seed_luck):
    from mlflow.tracking import MlflowClient

    name = f"recheck-{uuid.uuid4().hex[:8]}"
    path = write_config(tmp_path / "luck.yaml", luck_config(name, [10]))
    common = ["--tracking-uri", mlflow_server.url, "--cache-dir", str(cache_dir), "--storage", str(tmp_path / "rr")]
    out = run_cli("tune", str(path), *common, cwd=tmp_path, env=seed_luck)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    client = MlflowClient(mlflow_server.url)
    runs = {json.loads(r.data.tags["ray_unlearn.hyperparameters"])["plan"]: r for r in trial_runs(client, name)}
    assert set(runs) == {"lucky", "steady", "fragile"}
    one_seed = {plan: r.data.metrics["score"] for plan, r in runs.items()}
    assert max(one_seed, key=one_seed.get) != "steady", f"the one-seed winner must be a lucky one: {one_seed}"
    # the robust score, recomputed here from the per-seed figures MLflow holds
    for plan in ("lucky", "steady"):
        m = runs[plan].data.metrics
        assert runs[plan].data.tags["ray_unlearn.recheck_status_s10"] == "ok"
        assert m["recheck_score_mean"] == pytest.approx((m["score"] + m["recheck_score_s10"]) / 2)
    assert runs["fragile"].data.tags["ray_unlearn.recheck_status_s10"] == "diverged"
    assert runs["fragile"].data.metrics["recheck_score_mean"] == -1000.0
    assert runs["steady"].data.metrics["recheck_score_mean"] > runs["lucky"].data.metrics["recheck_score_mean"] + 2
    assert [plan for plan, r in runs.items() if r.data.tags.get("best") == "true"] == ["steady"]
    table = client.download_artifacts(runs["steady"].info.run_id, "recheck/seeds.csv", str(tmp_path))
    assert [line.split(",")[:3] for line in Path(table).read_text().splitlines()[1:]] == [["0", "sweep", "ok"], ["10", "re-check", "ok"]]
    parent = client.get_run(runs["steady"].data.tags["mlflow.parentRunId"])
    assert parent.data.metrics["recheck_score_mean"] == pytest.approx(runs["steady"].data.metrics["recheck_score_mean"])
    printed = [line.split()[1:3] for line in out.stdout.splitlines() if line.strip()[:1].isdigit() and "seed_luck-" in line]
    assert [row[0] for row in printed][:1] == [runs["steady"].info.run_name], out.stdout
    assert "ranked by recheck_score_mean" in out.stdout

    best = run_cli("best", name, "--tracking-uri", mlflow_server.url, "--export", "best.yaml", cwd=tmp_path, env=seed_luck)
    assert best.returncode == 0, best.stderr
    assert yaml.safe_load((tmp_path / "best.yaml").read_text())["fixed"]["plan"] == "steady"
    listed = [line.split()[1] for line in best.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert listed[0] == runs["steady"].info.run_name and listed[-1] == runs["fragile"].info.run_name
    by_score = run_cli("best", name, "--tracking-uri", mlflow_server.url, "--metric", "score", cwd=tmp_path, env=seed_luck)
    assert [line.split()[1] for line in by_score.stdout.splitlines() if line.strip()[:1].isdigit()][0] != runs["steady"].info.run_name


@pytest.mark.slow
def test_a_sweep_killed_during_its_recheck_resumes_and_runs_no_recheck_twice(tmp_path, mlflow_server, cache_dir, digits_refs,
                                                                           seed_luck):
    from mlflow.tracking import MlflowClient

    name = f"recheck-kill-{uuid.uuid4().hex[:8]}"
    path = write_config(tmp_path / "luck.yaml", luck_config(name, [10, 20], pause=4.0))
    common = ["--tracking-uri", mlflow_server.url, "--cache-dir", str(cache_dir), "--storage", str(tmp_path / "rr"), "--name", "sw"]
    log = open(tmp_path / "first.log", "w")
    driver = subprocess.Popen([sys.executable, "-m", "ray_unlearn.cli", "tune", str(path), *common], cwd=tmp_path,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **seed_luck})
    client = MlflowClient(mlflow_server.url)
    recorded = 0
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and driver.poll() is None and recorded == 0:
            recorded = sum(k.startswith("ray_unlearn.recheck_status_s") for r in trial_runs(client, name) for k in r.data.tags)
            time.sleep(0.3)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    recorded = sum(k.startswith("ray_unlearn.recheck_status_s") for r in trial_runs(client, name) for k in r.data.tags)
    assert 1 <= recorded < 6, (tmp_path / "first.log").read_text()[-3000:]

    out = run_cli("tune", str(path), *common, "--resume", cwd=tmp_path, env=seed_luck)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    runs = trial_runs(client, name)
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    for r in runs:
        for seed in (10, 20):
            assert f"ray_unlearn.recheck_status_s{seed}" in r.data.tags, (r.info.run_name, seed)
            if r.data.tags[f"ray_unlearn.recheck_status_s{seed}"] == "ok":
                history = client.get_metric_history(r.info.run_id, f"recheck_score_s{seed}")
                assert len(history) == 1, f"{r.info.run_name} seed {seed} was re-checked {len(history)} times"
    redone = [line for line in out.stderr.splitlines() if line.startswith("[re-check ")]
    assert len(redone) == 6 - recorded, out.stderr[-3000:]
    assert f"({6 - recorded} runs, {recorded} recorded earlier)" in out.stderr
    assert sum(r.data.tags.get("best") == "true" for r in runs) == 1


def test_the_start_point_is_always_rechecked_wherever_it_ranked():
    from ray_unlearn.config import parse_experiment
    from ray_unlearn.recheck import candidates

    exp = parse_experiment(digits_config(search={"lr": {"float": [0.001, 0.1], "start": 0.01}, "epochs": {"int": [1, 9]}},
                                         tune={"recheck": {"top": 2, "seeds": [10]}}))
    start = exp.warm_start()[0]
    rows = [{"trial_id": t, "run_name": t, "method": "finetune", "status": s, "score": -i,
             "hyperparameters": hp} for i, (t, s, hp) in enumerate([
                 ("a", "ok", {"lr": 0.05, "epochs": 3}), ("b", "collapsed", {"lr": 0.09, "epochs": 9}),
                 ("c", "ok", {"lr": 0.02, "epochs": 2}), ("d", "ok", {"lr": 0.03, "epochs": 4}), ("s", "ok", dict(start))])]
    assert [c.trial_id for c in candidates(exp, rows, 2)] == ["a", "c", "s"]
    assert [c.trial_id for c in candidates(exp, rows, 4)] == ["a", "c", "d", "s"]
