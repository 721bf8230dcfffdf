"""Autoscaling on one machine: Ray's fake multi-node provider behind a real
`ray start --head --autoscaling-config`, node types mirroring cluster.yaml (a head
without GPUs, a GPU worker type from 0 up), and a real `ray-unlearn tune` whose
trials each ask for half a GPU. Workers must be added while trials queue, every
trial must finish, and the workers must go away once idle."""

from __future__ import annotations

import json
import threading
import time

import pytest
import yaml

from ray_unlearn.tracking import STATUS

from ..conftest import run_cli
from .e2e import small_experiment, sweep_runs
from .helpers import CLUSTER_YAML, load_yaml
from .ray_head import alive_nodes, free_port, head_env, node_ip, start_head, stop_head

MAX_WORKERS = 2
TRIALS = 4


def fake_cluster_config(gcs_address: str) -> dict:
    """cluster.yaml's node types, resized for one machine, on the fake_multinode provider."""
    real = load_yaml(CLUSTER_YAML)
    gpu_type = next(n for n, t in real["available_node_types"].items() if t["resources"].get("GPU"))
    return {
        "cluster_name": "fake-" + real["cluster_name"],
        "max_workers": MAX_WORKERS,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 0.1,
        "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                     "disable_launch_config_check": True, "gcs_address": gcs_address},
        "auth": {}, "docker": {}, "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "rsync_exclude": [], "rsync_filter": [], "initialization_commands": [], "setup_commands": [],
        "head_setup_commands": [], "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
        "head_node_type": "ray.head.default",  # the fake provider's fixed name for its head
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 1}, "node_config": {}, "max_workers": 0},
            gpu_type: {"resources": {"CPU": 1, "GPU": 1}, "node_config": {}, "min_workers": 0, "max_workers": MAX_WORKERS},
        },
    }


class NodeWatch(threading.Thread):
    """Polls the cluster's alive nodes (through the dashboard's state API) once a second."""

    def __init__(self, dashboard_url: str):
        super().__init__(daemon=True)
        self.url, self.samples, self.stopped = dashboard_url, [], threading.Event()

    def alive(self) -> tuple[int, float]:
        nodes = alive_nodes(self.url)
        return len(nodes), sum(n.resources_total.get("GPU", 0) for n in nodes)

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.samples.append((time.monotonic(), *self.alive()))
            except Exception:  # noqa: BLE001 - a missed sample is fine
                pass
            self.stopped.wait(1.0)


@pytest.fixture()
def autoscaling_head(tmp_path):
    port = free_port()
    config = tmp_path / "autoscaling.json"
    config.write_text(json.dumps(fake_cluster_config(f"{node_ip()}:{port}")))
    env = head_env(RAY_FAKE_CLUSTER="1", AUTOSCALER_UPDATE_INTERVAL_S="1")
    head = start_head(tmp_path, num_cpus=1, num_gpus=0, autoscaling_config=config, gcs_port=port, env=env)
    try:
        yield head
    finally:
        stop_head(head)  # also ends any fake worker node still up (its processes are the head's)


@pytest.mark.slow
def test_gpu_trials_scale_the_cluster_up_then_idle_workers_go_away(autoscaling_head, tmp_path, mlflow_server, cache_dir):
    head = autoscaling_head
    watch = NodeWatch(head.dashboard_url)
    assert watch.alive() == (1, 0), "the head alone, without GPUs"
    raw = small_experiment("autoscale")
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    watch.start()
    try:
        out = run_cli("tune", str(path), "--address", head.gcs_address, "--num-samples", str(TRIALS),
                      "--set", "tune.resources.gpu=0.5", "--set", "tune.resources.cpu=0.5",
                      "--set", f"tune.max_concurrent={TRIALS}",
                      "--tracking-uri", mlflow_server.url, "--cache-dir", str(cache_dir),
                      "--storage", str(tmp_path / "ray_results"), cwd=tmp_path, env={"RAY_ADDRESS": ""}, timeout=300)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:] + "\n--- head ---\n" + head.log_tail()
        finished = time.monotonic()
        deadline = finished + 90
        while time.monotonic() < deadline and (not watch.samples or watch.samples[-1][1] > 1):
            time.sleep(1)
    finally:
        watch.stopped.set()
        watch.join(timeout=10)

    during = [s for s in watch.samples if s[0] <= finished]
    peak_nodes = max(n for _, n, _ in during)
    peak_gpus = max(g for _, _, g in during)
    assert peak_nodes == 1 + MAX_WORKERS and peak_gpus == MAX_WORKERS, f"scaled up to {peak_nodes} nodes: {watch.samples}"
    assert watch.samples[-1][1:] == (1, 0), f"idle workers removed: {watch.samples[-5:]}"

    parents, children = sweep_runs(mlflow_server.url, raw["experiment"])
    assert len(parents) == 1 and len(children) == TRIALS, (
        [(r.info.run_name, r.info.status, r.data.tags.get("ray_unlearn.trial_id"), r.data.tags.get("ray_unlearn.status"))
         for r in children], out.stderr[-4000:])
    assert all("score" in c.data.metrics and c.data.tags[STATUS] == "ok" for c in children), "every trial finished"
    assert f"[{TRIALS}/{TRIALS}]" in out.stderr
