"""End to end: `ray-unlearn tune` with a real local Ray instance and a real MLflow server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml

from ray_unlearn.tracking import BEST, KIND, PARENT, STATUS

from .conftest import digits_config, run_cli

N_TRIALS = 4


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, mlflow_server, cache_dir):
    """One real sweep through the CLI, logged to the session's MLflow server."""
    work = tmp_path_factory.mktemp("sweep")
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    raw = digits_config(
        experiment=name,
        method="gradient_ascent",
        fixed={"batch_size": 128},
        search={"lr": {"float": [1e-4, 3e-3], "log": True}, "epochs": {"int": [2, 20]}},
        objective={"retained": "val_acc", "mia_weight": 1.0, "forget_weight": 1.0},
        tune={"num_samples": N_TRIALS, "max_concurrent": 2, "resources": {"cpu": 1, "gpu": 0}, "report_seconds": 0},
    )
    path = work / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = run_cli("tune", str(path), "--tracking-uri", mlflow_server.url, "--cache-dir", str(cache_dir),
                  "--storage", str(work / "ray_results"), cwd=work)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server.url)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    return {"work": work, "name": name, "stdout": out.stdout, "stderr": out.stderr, "client": client,
            "experiment": experiment, "runs": runs, "path": path}


def test_one_parent_and_one_child_per_trial_each_with_a_score(sweep):
    parents = [r for r in sweep["runs"] if r.data.tags.get(KIND) == "sweep"]
    children = [r for r in sweep["runs"] if r.data.tags.get(KIND) == "trial"]
    assert len(parents) == 1 and len(children) == N_TRIALS
    parent = parents[0]
    assert all(c.data.tags[PARENT] == parent.info.run_id for c in children)
    assert all("score" in c.data.metrics and c.info.status == "FINISHED" for c in children)
    assert len({c.data.tags["ray_unlearn.trial_id"] for c in children}) == N_TRIALS
    for c in children:
        assert c.data.tags["ray_unlearn.method"] == "gradient_ascent" and c.data.tags[STATUS] == "ok"
        assert {"lr", "epochs", "batch_size"} <= set(c.data.params)


def test_children_hold_per_epoch_curves_and_final_metrics(sweep):
    client = sweep["client"]
    child = next(r for r in sweep["runs"] if r.data.tags.get(KIND) == "trial")
    history = client.get_metric_history(child.info.run_id, "val_acc")
    epochs = int(child.data.params["epochs"])
    assert len(history) >= epochs, "one point per epoch (plus the final evaluation)"
    assert sorted(m.step for m in history) == [m.step for m in sorted(history, key=lambda m: m.step)]
    for key in ("test_acc", "forget_acc", "retain_acc", "mia", "mia_gap", "avg_gap", "retrain_mia", "seconds", "ua"):
        assert key in child.data.metrics, key


def test_best_child_is_tagged_and_its_score_is_on_the_parent(sweep):
    children = [r for r in sweep["runs"] if r.data.tags.get(KIND) == "trial"]
    parent = next(r for r in sweep["runs"] if r.data.tags.get(KIND) == "sweep")
    best = max(children, key=lambda r: r.data.metrics["score"])
    assert best.data.tags.get(BEST) == "true"
    assert sum(c.data.tags.get(BEST) == "true" for c in children) == 1
    assert parent.data.metrics["score"] == pytest.approx(best.data.metrics["score"])
    assert best.info.run_name in parent.data.tags["mlflow.note.content"]
    assert "retrain_mia" in parent.data.metrics and "original_val_acc" in parent.data.metrics


def test_parent_holds_config_search_space_and_ranked_table(sweep):
    client = sweep["client"]
    parent = next(r for r in sweep["runs"] if r.data.tags.get(KIND) == "sweep")
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"config.yaml", "search_space.json", "trials.csv"} <= names
    space = json.loads(client.download_artifacts(parent.info.run_id, "search_space.json", str(sweep["work"])) and
                       (sweep["work"] / "search_space.json").read_text())
    assert space["lr"] == {"float": [1e-4, 3e-3], "log": True}


def test_tune_prints_a_ranked_table_and_how_to_look_at_it(sweep):
    out = sweep["stdout"]
    assert "best trials of" in out and "rank" in out
    assert "runs table:" in out and "ray-unlearn best" in out
    assert f"[{N_TRIALS}/{N_TRIALS}]" in sweep["stderr"], "one progress line per finished trial"


def test_best_export_then_run_reproduces_the_best_trial(sweep, mlflow_server, cache_dir):
    work = sweep["work"]
    out = run_cli("best", sweep["name"], "--tracking-uri", mlflow_server.url, "--export", "best.yaml", cwd=work)
    assert out.returncode == 0, out.stderr
    assert "best:" in out.stdout
    exported = yaml.safe_load((work / "best.yaml").read_text())
    children = [r for r in sweep["runs"] if r.data.tags.get(KIND) == "trial"]
    best = max(children, key=lambda r: r.data.metrics["score"])
    assert exported["search"] == {}
    assert exported["fixed"]["lr"] == pytest.approx(float(best.data.params["lr"]))
    assert exported["fixed"]["epochs"] == int(best.data.params["epochs"])
    run = run_cli("run", "best.yaml", "--tracking-uri", mlflow_server.url, "--cache-dir", str(cache_dir), cwd=work)
    assert run.returncode == 0, run.stderr[-2000:]
    client = sweep["client"]
    runs = client.search_runs([sweep["experiment"].experiment_id], filter_string=f"tags.{KIND} = 'run'")
    assert len(runs) == 1
    for key in ("score", "forget_acc", "val_acc", "mia"):
        assert runs[0].data.metrics[key] == pytest.approx(best.data.metrics[key], abs=1.0), key


def test_mlflow_rest_api_ranks_the_tagged_best_first(sweep, mlflow_server):
    """What a user's tooling sees: the runs search endpoint ordered by score."""
    import json as _json
    import urllib.request

    body = {
        "experiment_ids": [sweep["experiment"].experiment_id],
        "filter": "tags.`ray_unlearn.kind` = 'trial'",
        "order_by": ["metrics.score DESC"],
        "max_results": 10,
    }
    request = urllib.request.Request(f"{mlflow_server.url}/api/2.0/mlflow/runs/search", data=_json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        runs = _json.loads(response.read())["runs"]
    assert len(runs) == N_TRIALS
    tags = {t["key"]: t["value"] for t in runs[0]["data"]["tags"]}
    assert tags.get(BEST) == "true"
    scores = [next(m["value"] for m in r["data"]["metrics"] if m["key"] == "score") for r in runs]
    assert scores == sorted(scores, reverse=True)


def rendered_text(url: str, profile: Path) -> str:
    """The visible text of `url` as headless Chromium renders it (a wide window: the runs table renders the
    columns in view only)."""
    import html
    import re
    import shutil
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--window-size=2400,1400", "--virtual-time-budget=25000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    ).stdout
    dom = re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", dom, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)))


def test_the_printed_links_show_why_a_trial_ranks_where_it_does_in_a_real_browser(sweep, mlflow_server, tmp_path):
    """MLflow 3 opens experiments on a GenAI overview and its runs table shows no metric column by default: the
    printed runs-table link opens the sweep's own view (its trials, best first, the score, the task's columns,
    the searched hyperparameters and the best tag visible), and the compare link puts the best trials side by side."""
    import re

    children = [r for r in sweep["runs"] if r.data.tags.get(KIND) == "trial"]
    ranked = sorted(children, key=lambda r: -r.data.metrics["score"])
    link = next(line.split(": ", 1)[1] for line in sweep["stdout"].splitlines() if line.startswith("runs table:"))
    assert "viewStateShareKey=" in link
    text = rendered_text(link, tmp_path / "p1")
    table = text[text.index("Run Name"):]
    for header in ("score", "val_acc", "forget_acc", "mia_gap", "avg_gap", "lr", "epochs", "best"):
        assert re.search(rf"\b{header}\b", table), f"column {header} is not visible"
    shown = sorted((table.find(r.info.run_name), r.info.run_name) for r in children)
    assert [n for _, n in shown] == [r.info.run_name for r in ranked], "trials best first"
    assert repr(ranked[0].data.metrics["score"]) in table and repr(ranked[-1].data.metrics["score"]) in table, "score cells"
    assert f"{len(children)} matching runs" in text, "the sweep's trials only, not its parent run"

    compare = next(line.split(": ", 1)[1] for line in sweep["stdout"].splitlines() if line.startswith("compare the best"))
    text = rendered_text(compare, tmp_path / "p2")
    assert "Parallel Coordinates Plot" in text and f"Comparing {min(5, len(children))} Runs" in text
    page = text[text.index("Run details"):]
    assert all(r.info.run_name in page for r in ranked[:5])
    params = page[page.index("Parameters"):page.index("Metrics")]
    assert "epochs" in params and "lr" in params and ranked[0].data.params["epochs"] in params
