"""A sweep on a two-node Ray cluster on one machine places trials on both nodes."""

from __future__ import annotations

import subprocess
import sys
import uuid

import yaml
from mlflow.tracking import MlflowClient

from .conftest import digits_config, run_cli

CLUSTER = """
import sys
from ray.cluster_utils import Cluster
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
cluster.add_node(num_cpus=1, resources={"worker_slot": 1})
cluster.wait_for_nodes()
print(cluster.address, flush=True)
sys.stdin.read()  # runs until the test closes stdin
cluster.shutdown()
"""


def test_sweep_places_trials_on_both_nodes(tmp_path, mlflow_server, cache_dir, digits_refs):
    holder = subprocess.Popen([sys.executable, "-c", CLUSTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        address = holder.stdout.readline().strip()
        assert address, "the cluster did not start"
        name = f"two-nodes-{uuid.uuid4().hex[:8]}"
        path = tmp_path / "exp.yaml"
        path.write_text(yaml.safe_dump(digits_config(
            experiment=name, method="gradient_ascent",
            search={"lr": {"float": [1e-4, 3e-3], "log": True}, "epochs": {"int": [10, 30]}},
            tune={"num_samples": 4, "max_concurrent": 2, "resources": {"cpu": 1, "gpu": 0}},
        )))
        out = run_cli("tune", str(path), "--address", address, "--tracking-uri", mlflow_server.url,
                      "--cache-dir", str(cache_dir), "--storage", str(tmp_path / "rr"), cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-3000:]
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    client = MlflowClient(mlflow_server.url)
    exp = client.get_experiment_by_name(name)
    children = client.search_runs([exp.experiment_id], filter_string="tags.`ray_unlearn.kind` = 'trial'")
    assert len(children) == 4 and all(r.info.status == "FINISHED" for r in children)
    nodes = {r.data.tags["ray_unlearn.node_id"] for r in children}
    assert len(nodes) == 2, "trials ran on both nodes (1 CPU each, 2 trials at a time)"


def test_ray_s_own_sigterm_traceback_is_dropped_from_forwarded_worker_logs_and_nothing_else():
    from ray_unlearn.search.cluster import ShutdownNoise

    noise = [  # as a Ray 2.60 worker prints it when Ray stops it at a sweep's end
        "Exception ignored in: <function WeakSet.__init__.<locals>._remove at 0x7f138d9fa5c0>",
        "Traceback (most recent call last):",
        '  File "/usr/lib/python3.11/_weakrefset.py", line 39, in _remove',
        "    def _remove(item, selfref=ref(self)):",
        "",
        '  File "/venv/lib/python3.11/site-packages/ray/_private/worker.py", line 1063, in sigterm_handler',
        "    raise_sys_exit_with_custom_error_message(",
        '  File "python/ray/_raylet.pyx", line 712, in ray._raylet.raise_sys_exit_with_custom_error_message',
        "SystemExit: 1",
    ]
    real = ["Exception ignored in: <function f at 0x1>", "Traceback (most recent call last):", '  File "m.py", line 3, in f',
            "ValueError: a real error"]
    logs = ShutdownNoise()
    # split across batches as Ray may deliver them, interleaved with another worker's lines
    assert logs.drop(1, ["epoch 1", *noise[:4]]) == ["epoch 1"]
    assert logs.drop(2, real[:2]) == []
    assert logs.drop(1, [*noise[4:], "after"]) == ["after"]
    assert logs.drop(2, real[2:]) == real
