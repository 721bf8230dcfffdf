"""The audit end to end: a real sweep on a real local Ray instance, then `ray-unlearn audit`, whose
population models are Ray tasks, cached, and whose metrics land on the audited child runs of the
real MLflow server; the sanity rows hold on digits class-wise (original told apart, retrain ~ chance)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import yaml

from ray_unlearn.tracking import KIND

from .conftest import digits_config, run_cli

MODELS = 6


@pytest.fixture(scope="module")
def audited(tmp_path_factory, mlflow_server):
    work = tmp_path_factory.mktemp("audit")
    cache = work / "cache"
    name = f"audit-{uuid.uuid4().hex[:8]}"
    raw = digits_config(
        experiment=name,
        method="neggrad_plus",
        train={"epochs": 20, "lr": 0.05, "batch_size": 64},  # a short recipe: the audit trains 2N retrains
        search={"lr": {"float": [0.01, 0.05], "log": True}},
        fixed={"epochs": 3, "beta": 0.9},
        tune={"num_samples": 2, "max_concurrent": 2, "resources": {"cpu": 1, "gpu": 0}},
    )
    path = work / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    common = ["--tracking-uri", mlflow_server.url, "--cache-dir", str(cache)]
    tuned = run_cli("tune", str(path), *common, "--storage", str(work / "ray_results"), cwd=work)
    assert tuned.returncode == 0, tuned.stdout[-3000:] + tuned.stderr[-3000:]
    first = run_cli("audit", str(path), "--top", "1", "--models", str(MODELS), "--forget-seeds", "1,2", *common, cwd=work)
    second = run_cli("audit", str(path), "--top", "1", "--models", str(MODELS), *common, cwd=work)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server.url)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], max_results=50)
    return {"first": first, "second": second, "client": client, "runs": runs, "cache": cache}


def test_audit_prints_its_table_with_sanity_rows_and_is_not_void(audited):
    out = audited["first"]
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "original" in out.stdout and "retrain (ceiling)" in out.stdout and "audit VOID" not in out.stdout
    assert f"{MODELS} unlearned and {MODELS} retrained models each" in out.stdout


def test_a_second_audit_trains_no_population_model(audited):
    assert f"({3 * MODELS} trained now" in audited["first"].stdout, "N unlearned + N retrain + N ceiling retrains"
    out = audited["second"]
    assert out.returncode == 0 and "(0 trained now" in out.stdout, out.stdout[-2000:]


def test_audit_metrics_and_files_land_on_the_audited_child_run(audited):
    children = [r for r in audited["runs"] if r.data.tags.get(KIND) == "trial"]
    audited_runs = [r for r in children if "audit_forget_quality" in r.data.metrics]
    assert len(audited_runs) == 1, "--top 1 audits the best trial only"
    run = audited_runs[0]
    assert run.data.metrics["score"] == max(c.data.metrics["score"] for c in children)
    m = run.data.metrics
    assert m["audit_models"] == MODELS and 0.0 <= m["audit_forget_quality"] <= 1.0 and 0.0 <= m["audit_auc"] <= 1.0
    assert m["audit_score"] <= m["audit_forget_quality"] * 1.2
    files = {a.path for a in audited["client"].list_artifacts(run.info.run_id, "audit")}
    assert {"audit/epsilon_histogram.png", "audit/confidences.npz"} <= files
    local = audited["client"].download_artifacts(run.info.run_id, "audit/confidences.npz")
    with np.load(local) as z:
        assert z["unlearned_confidence"].shape[0] == MODELS and z["epsilon"].shape == (z["forget_labels"].shape[0],)
        shape = (MODELS, z["forget_labels"].shape[0])
        assert z["retrained_confidence"].shape == shape and z["ceiling_confidence"].shape == shape, "both populations travel"
        assert not np.allclose(z["unlearned_confidence"], z["retrained_confidence"])
        from ray_unlearn.metrics.forgetting_quality import example_epsilons, final_score, forgetting_quality

        # anyone can recompute the logged figures from the file alone
        f = forgetting_quality(example_epsilons(z["unlearned_confidence"], z["retrained_confidence"]), MODELS)
        assert f == pytest.approx(m["audit_forget_quality"], abs=1e-9)
        ceiling = forgetting_quality(example_epsilons(z["ceiling_confidence"], z["retrained_confidence"]), MODELS)
        assert ceiling == pytest.approx(m["audit_ceiling"], abs=1e-9)
        score = final_score(f, z["unlearned_retain_acc"], z["retrained_retain_acc"], z["unlearned_test_acc"], z["retrained_test_acc"])
        assert score == pytest.approx(m["audit_score"], abs=1e-9)
        assert z["unlearned_retain_acc"].mean() == pytest.approx(m["audit_retain_acc"], abs=1e-9)
    parent = next(r for r in audited["runs"] if r.data.tags.get(KIND) == "sweep")
    assert "audit/audit_table.csv" in {a.path for a in audited["client"].list_artifacts(parent.info.run_id, "audit")}


def test_best_ranks_by_audit_score(audited, tmp_path, mlflow_server):
    name = audited["runs"][0].info.experiment_id
    experiment = audited["client"].get_experiment(name).name
    out = run_cli("best", experiment, "--metric", "audit_score", "--tracking-uri", mlflow_server.url, cwd=tmp_path)
    assert out.returncode == 0 and "audit_score" in out.stdout, out.stderr[-2000:]


def test_population_members_are_cached_under_the_references(audited):
    entries = [p.name for p in audited["cache"].iterdir() if "-audit-" in p.name]
    assert sum("-audit-retrain-" in e for e in entries) == 2 * MODELS
    assert sum("-audit-unlearned-" in e for e in entries) == MODELS


def test_held_out_confirmation_reports_mean_and_spread_on_unseen_seeds(audited):
    out = audited["first"].stdout
    assert "held-out confirmation: seeds 1, 2" in out
    table = out[out.index("held-out confirmation"):]
    for header in ("UA", "RA", "TA", "MIA", "Avg Gap"):
        assert header in table
    assert "original (no unlearning)" in table and "retrain vs retrain (noise floor)" in table
    assert table.count("±") >= 3 * 5, "original, the noise floor and the configuration: five columns each"


def test_held_out_summary_is_mean_and_population_spread():
    from ray_unlearn.confirm import summarise

    runs = [{"ua": 2.0, "retain_acc": 99.0, "test_acc": 90.0, "test_mia": 10.0, "test_avg_gap": 1.0},
            {"ua": 4.0, "retain_acc": 97.0, "test_acc": 92.0, "test_mia": 14.0, "test_avg_gap": 3.0, "status": "ok"}]
    row = summarise("x", runs, 2)
    assert row["ua_mean"] == 3.0 and row["ua_std"] == 1.0 and row["UA"] == "3.00 ± 1.00"
    assert row["test_mia_mean"] == 12.0 and row["test_mia_std"] == 2.0 and row["failed"] == 0


def test_held_out_seeds_must_differ_from_the_sweeps(digits_refs, cache_dir):
    import torch

    from ray_unlearn.cache import Store
    from ray_unlearn.config import parse_experiment
    from ray_unlearn.confirm import held_out
    from ray_unlearn.errors import ConfigError

    exp = parse_experiment(digits_config())
    with pytest.raises(ConfigError, match="held-out seeds must differ"):
        held_out(exp, [("ft", "finetune", {})], [0, 1], Store(cache_dir), torch.device("cpu"))
