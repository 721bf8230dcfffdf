"""Fault scenarios of a sweep, one after the other, and what each left in MLflow.

For every scenario: the trials the sweep was asked for, the trials Ray Tune ended
(the sweep's ranked `trials.csv`), the MLflow child runs of its parent run, child
runs that duplicate a trial, and trials lost (asked for, but without a finished or
failed child run). Real components throughout: an `mlflow server` on SQLite started
here, local Ray instances, a two-node `ray.cluster_utils.Cluster`, the CLI as a user
runs it. The faults:

  raise-once       AMUN trials fail once (the reference cache vanishes, back on the retry)
  raise-always     AMUN trials keep failing (cache gone); max_failures 1, then FAILED
  nan-collapse     gradient ascent with lr 1e6 (non-finite) and 0.5 (accuracy collapse)
  node-killed      the worker node of a two-node cluster is removed mid-sweep (max_failures 2)
  driver-killed    the driver gets SIGKILL mid-sweep; `tune --resume` finishes it
  mlflow-restart   the tracking server stops mid-sweep and restarts on the same port and store

    python bench/faults.py                      # ~4 minutes on 2 cores
    python bench/faults.py --only node-killed mlflow-restart --keep
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # throwaway local instances on 127.0.0.1
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # MLflow prints a link per run otherwise

import yaml  # noqa: E402

from ray_unlearn.progress import table  # noqa: E402

SCENARIOS = ["raise-once", "raise-always", "nan-collapse", "node-killed", "driver-killed", "mlflow-restart"]
COLUMNS = ["scenario", "trials expected", "trials finished", "MLflow child runs", "duplicates", "lost", "outcome"]

CLUSTER = """
import sys
from ray.cluster_utils import Cluster
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
worker = cluster.add_node(num_cpus=1, resources={"worker_slot": 1})
cluster.wait_for_nodes()
print(cluster.address, worker.node_id, flush=True)
for line in sys.stdin:
    if line.strip() == "kill-worker":
        cluster.remove_node(worker, allow_graceful=False)
        print("killed", flush=True)
cluster.shutdown()
"""


def log(message: str) -> None:
    print(f"[faults] {message}", file=sys.stderr, flush=True)


# --- services ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`mlflow server` on 127.0.0.1, SQLite behind it; stop() and start() keep port and store."""

    def __init__(self, workdir: Path):
        self.workdir, self.port = workdir, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        (self.workdir / "artifacts").mkdir(parents=True, exist_ok=True)
        out = open(self.workdir / "server.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.workdir / 'mlflow.db'}",
             "--artifacts-destination", str(self.workdir / "artifacts"), "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.workdir)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(self.workdir / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("mlflow server did not answer /health")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def experiment_dict(name: str, **sections: Any) -> dict:
    """Digits, digit 0 forgotten, the reference recipe every scenario shares (trained once)."""
    raw = {
        "experiment": name,
        "data": {"dataset": "digits", "forget": {"kind": "class", "classes": [0]}, "seed": 0},
        "model": {"arch": "small_cnn"},
        "train": {"epochs": 60, "lr": 0.05, "batch_size": 64},
        "method": "finetune",
        "search": {"lr": {"float": [1e-3, 1e-2], "log": True}, "epochs": {"int": [20, 30]}},
        "tune": {"num_samples": 4, "max_concurrent": 2, "resources": {"cpu": 1, "gpu": 0}},
    }
    raw.update(sections)
    return raw


class Bench:
    def __init__(self, root: Path):
        self.root = root
        self.cache = root / "cache"
        self.server = Server(root / "mlflow")
        self.rows: list[dict] = []

    def cli(self, *args: str, cwd: Path, env: dict | None = None, wait: bool = True):
        cmd = [sys.executable, "-m", "ray_unlearn.cli", *args]
        out = open(cwd / "driver.log", "a")
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **(env or {})})
        if wait:
            proc.wait()
        return proc

    def workdir(self, scenario: str, raw: dict) -> tuple[Path, Path]:
        work = self.root / scenario
        work.mkdir()
        path = work / "exp.yaml"
        path.write_text(yaml.safe_dump(raw))
        return work, path

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.server.url)

    def trial_runs(self, experiment: str) -> list:
        client = self.client()
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return []
        return client.search_runs([exp.experiment_id], filter_string="tags.`ray_unlearn.kind` = 'trial'", max_results=1000)

    def record(self, scenario: str, experiment: str, expected: int, note: str = "") -> None:
        """Count what the sweep left: Tune's trials (the parent's trials.csv) against MLflow's child runs."""
        client = self.client()
        exp = client.get_experiment_by_name(experiment)
        parents = client.search_runs([exp.experiment_id], filter_string="tags.`ray_unlearn.kind` = 'sweep'") if exp else []
        rows: list[dict] = []
        children: list = []
        if parents:
            parent = parents[0]
            children = client.search_runs([exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                                          max_results=1000)
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    text = Path(client.download_artifacts(parent.info.run_id, "trials.csv", tmp)).read_text()
                rows = list(csv.DictReader(io.StringIO(text)))
            except Exception as err:  # noqa: BLE001 - a sweep that never finished has none
                log(f"{scenario}: no trials.csv ({err})")
        ids = [r.data.tags.get("ray_unlearn.trial_id") for r in children]
        ended = {r.info.run_name for r in children
                 if r.info.status in ("FINISHED", "FAILED") and r.data.tags.get("ray_unlearn.status") not in (None, "running")}
        finished_trials = {row["run_name"] for row in rows}
        statuses = Counter(r.data.tags.get("ray_unlearn.status", "?") for r in children)
        outcome = ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
        best = [r.data.tags.get("ray_unlearn.status") for r in children if r.data.tags.get("best") == "true"]
        outcome += f"; best is {'/'.join(best) or 'none'}" + (f"; {note}" if note else "")
        self.rows.append({
            "scenario": scenario, "trials expected": expected, "trials finished": len(rows), "MLflow child runs": len(children),
            "duplicates": len(children) - len(set(ids)), "lost": expected - len(finished_trials & ended), "outcome": outcome,
        })
        log(f"{scenario}: {self.rows[-1]}")

    # --- in-process scenarios: one local Ray instance, the Sweep API ---------------------------

    def in_process(self, scenarios: list[str]) -> None:
        import ray
        from ray import tune

        from ray_unlearn.cache import Store
        from ray_unlearn.config import parse_experiment
        from ray_unlearn.workflow import Sweep

        class Attempts(tune.Callback):
            def __init__(self, repair: str | None = None):
                self.recovered, self.repair = 0, repair

            def on_trial_recover(self, iteration, trials, trial, **info):
                self.recovered += 1
                path = Path(self.repair) if self.repair else None
                if path is not None and path.is_file():
                    path.unlink()
                    path.mkdir()

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            for scenario in scenarios:
                work = self.root / scenario
                work.mkdir()
                name = f"{scenario}-{uuid.uuid4().hex[:6]}"
                if scenario in ("raise-once", "raise-always"):
                    raw = experiment_dict(
                        name, method=["amun", "gradient_ascent"], fixed={"amun": {"steps": 5, "epochs": 2, "max_doublings": 2}},
                        search={"amun": {"lr": {"float": [1e-3, 1e-2], "log": True}},
                                "gradient_ascent": {"lr": {"float": [1e-4, 1e-3], "log": True}},
                                "points_to_evaluate": [{"method": "amun"}, {"method": "gradient_ascent"}, {"method": "amun"}]},
                        tune={"num_samples": 3, "max_concurrent": 2, "max_failures": 1},
                    )
                    private = work / "cache"  # the sweep's own copy of the references, then it vanishes
                    shutil.copytree(self.cache, private)
                    sweep = Sweep(parse_experiment(raw), tracking_uri=self.server.url, storage=str(work / "rr"), store=Store(private))
                    sweep.prepare()
                    shutil.rmtree(private)
                    private.write_text("the cache volume went away")
                    attempts = Attempts(repair=str(private) if scenario == "raise-once" else None)
                    sweep.finish(sweep.run(callbacks=[attempts]))
                    self.record(scenario, name, 3, f"Tune retries: {attempts.recovered}")
                else:
                    raw = experiment_dict(
                        name, method="gradient_ascent", fixed={"epochs": 5},
                        search={"lr": {"choice": [0.003, 0.5, 1.0e6]},
                                "points_to_evaluate": [{"lr": 0.003}, {"lr": 0.5}, {"lr": 1.0e6}]},
                        tune={"num_samples": 3, "max_concurrent": 2, "report_seconds": 0},
                    )
                    sweep = Sweep(parse_experiment(raw), tracking_uri=self.server.url, storage=str(work / "rr"), store=Store(self.cache))
                    sweep.finish(sweep.run())
                    self.record(scenario, name, 3)
        finally:
            ray.shutdown()

    # --- the CLI scenarios ------------------------------------------------------------------------

    def wait_for_children(self, name: str, driver: subprocess.Popen, *, running: int = 0, finished: int = 0,
                          timeout: float = 240) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and driver.poll() is None:
            runs = self.trial_runs(name)
            if runs and sum(r.info.status == "RUNNING" for r in runs) >= running and \
                    sum(r.info.status == "FINISHED" for r in runs) >= finished:
                return True
            time.sleep(0.2)
        return False

    def node_killed(self) -> None:
        name = f"node-killed-{uuid.uuid4().hex[:6]}"
        work, path = self.workdir("node-killed", experiment_dict(
            name, search={"lr": {"float": [1e-3, 1e-2], "log": True}, "epochs": {"int": [30, 40]}},
            tune={"num_samples": 4, "max_concurrent": 2, "max_failures": 2}))
        holder = subprocess.Popen([sys.executable, "-c", CLUSTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        note = ""
        try:
            address, worker = holder.stdout.readline().split()
            driver = self.cli("tune", str(path), "--address", address, "--tracking-uri", self.server.url, "--cache-dir",
                              str(self.cache), "--storage", str(work / "rr"), cwd=work, wait=False)
            if self.wait_for_children(name, driver, running=2):  # two 1-CPU trials on two 1-CPU nodes: one is on the worker
                holder.stdin.write("kill-worker\n")
                holder.stdin.flush()
                holder.stdout.readline()
                note = "worker removed with 2 trials running"
            driver.wait(timeout=600)
            note += f"; driver exit {driver.returncode}"
        finally:
            if holder.poll() is None:
                holder.stdin.close()
                holder.wait(timeout=60)
        self.record("node-killed", name, 4, note)

    def driver_killed(self) -> None:
        name = f"driver-killed-{uuid.uuid4().hex[:6]}"
        work, path = self.workdir("driver-killed", experiment_dict(
            name, method="gradient_ascent", search={"lr": {"float": [1e-4, 3e-3], "log": True}, "epochs": {"int": [5, 25]}},
            tune={"num_samples": 6, "max_concurrent": 1}))
        common = ["--tracking-uri", self.server.url, "--cache-dir", str(self.cache), "--storage", str(work / "rr"), "--name", "sw"]
        driver = self.cli("tune", str(path), *common, cwd=work, wait=False)
        self.wait_for_children(name, driver, finished=2)
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray instance it started
        driver.wait()
        before = self.trial_runs(name)
        resumed = self.cli("tune", str(path), *common, "--resume", cwd=work)
        self.record("driver-killed", name, 6, f"killed with {sum(r.info.status == 'FINISHED' for r in before)} finished, "
                                              f"{sum(r.info.status == 'RUNNING' for r in before)} running; resume exit {resumed.returncode}")

    def mlflow_restart(self) -> None:
        name = f"mlflow-restart-{uuid.uuid4().hex[:6]}"
        work, path = self.workdir("mlflow-restart", experiment_dict(
            name, search={"lr": {"float": [1e-3, 1e-2], "log": True}, "epochs": {"int": [10, 16]}},
            tune={"num_samples": 4, "max_concurrent": 2, "report_seconds": 0}))
        driver = self.cli("tune", str(path), "--tracking-uri", self.server.url, "--cache-dir", str(self.cache), "--storage",
                          str(work / "rr"), cwd=work, wait=False,
                          env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"})
        self.wait_for_children(name, driver)
        down = time.monotonic()
        self.server.stop()
        self.server.start()
        outage = time.monotonic() - down
        driver.wait(timeout=600)
        retries = (work / "driver.log").read_text().count("MLflow write failed")
        self.record("mlflow-restart", name, 4, f"server down {outage:.0f} s, {retries} write retries; driver exit {driver.returncode}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run these scenarios only")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, stores) and print it")
    args = parser.parse_args()
    chosen = [s for s in SCENARIOS if not args.only or s in args.only]
    root = Path(tempfile.mkdtemp(prefix="ray-unlearn-faults-"))
    bench = Bench(root)
    started = time.monotonic()
    try:
        log(f"working in {root}; starting an MLflow server")
        bench.server.start()
        prep = root / "prepare"
        prep.mkdir()
        (prep / "exp.yaml").write_text(yaml.safe_dump(experiment_dict("prepare")))
        bench.cli("prepare", "exp.yaml", "--cache-dir", str(bench.cache), cwd=prep)
        bench.in_process([s for s in chosen if s in ("raise-once", "raise-always", "nan-collapse")])
        for scenario in ("node-killed", "driver-killed", "mlflow-restart"):
            if scenario in chosen:
                log(f"{scenario} ...")
                getattr(bench, scenario.replace("-", "_"))()
    finally:
        bench.server.stop()
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(table(bench.rows, COLUMNS))
    print(f"\n{len(bench.rows)} scenarios in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
