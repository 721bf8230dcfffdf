"""The small experiment both end-to-end deployment tests run (same references: trained once a session)."""

from __future__ import annotations

import uuid

from ..conftest import digits_config


def small_experiment(prefix: str, **tune) -> dict:
    return digits_config(
        experiment=f"{prefix}-{uuid.uuid4().hex[:8]}",
        method="gradient_ascent",
        train={"epochs": 20, "lr": 0.05, "batch_size": 64},
        fixed={"batch_size": 128},
        search={"lr": {"float": [1e-4, 3e-3], "log": True}, "epochs": {"int": [2, 10]}},
        objective={"retained": "val_acc", "mia_weight": 1.0, "forget_weight": 1.0},
        tune={"num_samples": 2, "resources": {"cpu": 1, "gpu": 0}, **tune},
    )


def sweep_runs(tracking_uri: str, experiment: str) -> tuple[list, list]:
    from mlflow.tracking import MlflowClient

    from ray_unlearn.tracking import KIND

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r}"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get(KIND) == "sweep"]
    children = [r for r in runs if r.data.tags.get(KIND) == "trial"]
    return parents, children
