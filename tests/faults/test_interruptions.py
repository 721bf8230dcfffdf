"""Stopping, restarting and pointing the tool at dead services, as a platform team does: the real CLI in a
subprocess, real signals at a real moment (after the k-th trial's child run has finished), then the MLflow
runs counted: parent status, children by status and trial id, per-epoch steps per child, exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from ..conftest import digits_config, run_cli
from .helpers import assert_user_error, sweep_runs, trial_runs, write_config

N = 5


def slow_digits(name: str, n: int = N) -> dict:
    """Trials of a few seconds each (a retrain from scratch), two at a time: a signal lands mid-trial."""
    return digits_config(experiment=name, method="retrain", fixed={"batch_size": 64},
                         search={"lr": {"float": [0.02, 0.08], "log": True}, "epochs": {"int": [15, 25]}},
                         tune={"num_samples": n, "max_concurrent": 2, "resources": {"cpu": 1, "gpu": 0}})


def start(path: Path, *args: str, cwd: Path, log: str) -> subprocess.Popen:
    out = open(cwd / f"{log}.out", "w")
    err = open(cwd / f"{log}.err", "w")
    return subprocess.Popen([sys.executable, "-m", "ray_unlearn.cli", "tune", str(path), *args], cwd=cwd, stdout=out, stderr=err,
                            start_new_session=True)


def wait_for_finished(client: MlflowClient, name: str, k: int, driver: subprocess.Popen, seconds: float = 240) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and driver.poll() is None:
        done = sum(r.info.status == "FINISHED" for r in trial_runs(client, name))
        if done >= k:
            return done
        time.sleep(0.3)
    raise AssertionError(f"{k} trials did not finish (driver exit {driver.poll()})")


def steps_once(client: MlflowClient, runs: list) -> None:
    """Each child's per-epoch curve has every step once."""
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")]
        assert len(steps) == len(set(steps)), f"{run.info.run_name}: steps {steps} logged twice"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_is_an_interruption_then_resume_finishes_without_rerunning(sig, tmp_path, mlflow_server, cache_dir,
                                                                               digits_refs):
    name = f"signal-{sig.name.lower()}-{uuid.uuid4().hex[:8]}"
    path = write_config(tmp_path / "exp.yaml", slow_digits(name))
    common = ["--tracking-uri", mlflow_server.url, "--cache-dir", str(cache_dir), "--storage", str(tmp_path / "rr"), "--name", "sw"]
    client = MlflowClient(mlflow_server.url)
    driver = start(path, *common, cwd=tmp_path, log="first")
    try:
        wait_for_finished(client, name, 2, driver)
        driver.send_signal(sig)  # to the driver alone, as Kubernetes and `kill` do
        code = driver.wait(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    out, err = (tmp_path / "first.out").read_text(), (tmp_path / "first.err").read_text()
    assert code == 128 + sig, f"exit {code}: {err[-3000:]}"
    assert "Aborted" not in err and "*** SIGTERM received" not in err and "Traceback" not in err, err[-3000:]
    (parent,) = sweep_runs(client, name)
    assert parent.info.status == "KILLED" and parent.data.tags["ray_unlearn.status"] == "interrupted"
    children = trial_runs(client, name)
    finished = [r for r in children if r.info.status == "FINISHED"]
    cut = [r for r in children if r.info.status != "FINISHED"]
    assert parent.data.metrics["trials_finished"] == len(finished) >= 2
    assert all(r.info.status == "KILLED" and r.data.tags["ray_unlearn.status"] == "interrupted" for r in cut), \
        [(r.info.run_name, r.info.status, r.data.tags.get("ray_unlearn.status")) for r in cut]
    assert not any(r.data.tags.get("best") == "true" for r in children), "an interrupted sweep chose nothing"
    assert f"INTERRUPTED ({sig.name}) after {len(finished)} of {N} trials" in out
    listed = [line.split()[1] for line in out.splitlines() if line.strip()[:1].isdigit() and "retrain-" in line]
    assert sorted(listed) == sorted(r.info.run_name for r in finished), "the table lists finished trials only"
    assert f"ray-unlearn tune {path} --resume --name sw" in err
    history = {r.info.run_id: len(client.get_metric_history(r.info.run_id, "val_acc")) for r in finished}

    if sig == signal.SIGINT:  # and two drivers of one sweep: the second refuses while the first runs
        # the first extends the sweep, so it is still running when the second (a new process: seconds of
        # imports on a loaded machine) reaches the lock
        total = N + 4
        first = start(path, *common, "--resume", "--num-samples", str(total), cwd=tmp_path, log="resume1")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "resuming sweep sw" not in (tmp_path / "resume1.err").read_text():
            time.sleep(0.2)  # it holds the sweep's lock from here on
        second = run_cli("tune", str(path), *common, "--resume", cwd=tmp_path)
        line = assert_user_error(second, "sweep sw is already running")
        assert f"pid {first.pid}" in line
        assert first.wait(timeout=600) == 0, (tmp_path / "resume1.err").read_text()[-3000:]
    else:  # and a resumed sweep extended past its count
        resumed = run_cli("tune", str(path), *common, "--resume", "--num-samples", str(N + 1), cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert f"resuming sweep sw: {N + 1} trials" in resumed.stderr
        total = N + 1
    children = trial_runs(client, name)
    assert len(children) == total and all(r.info.status == "FINISHED" for r in children), \
        [(r.info.run_name, r.info.status) for r in children]
    assert len({r.data.tags["ray_unlearn.trial_id"] for r in children}) == total
    for run_id, length in history.items():  # finished before the signal: kept, never run again
        assert len(client.get_metric_history(run_id, "val_acc")) == length
    steps_once(client, children)
    (parent,) = sweep_runs(client, name)
    assert parent.info.status == "FINISHED" and parent.data.tags["ray_unlearn.status"] == "finished"
    assert sum(r.data.tags.get("best") == "true" for r in children) == 1


def test_resume_cannot_shrink_a_sweep_and_a_new_sweep_cannot_take_an_existing_name(tmp_path, mlflow_server, cache_dir):
    from ray_unlearn.tracking import NUM_SAMPLES, SweepTracker

    name = f"names-{uuid.uuid4().hex[:8]}"
    tracker = SweepTracker(mlflow_server.url, name)
    tracker.start_sweep("sw", tags={NUM_SAMPLES: 6}, params={}, metrics={}, files={})
    path = write_config(tmp_path / "exp.yaml", slow_digits(name))
    common = ["--tracking-uri", mlflow_server.url, "--cache-dir", str(cache_dir), "--storage", str(tmp_path / "rr")]
    assert_user_error(run_cli("tune", str(path), *common, "--resume", "--name", "sw", "--num-samples", "4", cwd=tmp_path),
                      "--num-samples: sweep sw has 6 trials; --num-samples can extend it")
    assert_user_error(run_cli("tune", str(path), *common, "--name", "sw", cwd=tmp_path),
                      "a sweep named 'sw' exists", "--resume")
    assert_user_error(run_cli("tune", str(path), *common, "--resume", "--name", "other", cwd=tmp_path), "no sweep 'other'")


def test_a_dead_cluster_address_is_one_line_within_the_connect_timeout_and_no_resume_hint(tmp_path, mlflow_server, cache_dir,
                                                                                        digits_refs):
    from ..conftest import free_port

    name = f"dead-address-{uuid.uuid4().hex[:8]}"
    path = write_config(tmp_path / "exp.yaml", slow_digits(name))
    started = time.monotonic()
    out = run_cli("tune", str(path), "--address", f"127.0.0.1:{free_port()}", "--connect-timeout", "4", "--tracking-uri",
                  mlflow_server.url, "--cache-dir", str(cache_dir), "--storage", str(tmp_path / "rr"), cwd=tmp_path)
    assert time.monotonic() - started < 150  # without the probe: 400 s and no answer; a margin for a loaded machine
    assert_user_error(out, "no Ray cluster answers", "within 4 s")
    assert "--resume" not in out.stderr, "there never was a sweep to resume"
    client = MlflowClient(mlflow_server.url)
    assert client.get_experiment_by_name(name) is None or not sweep_runs(client, name), "nothing was started in MLflow"


def test_sigterm_while_preparing_exits_143_without_a_sweep_or_a_resume_hint(tmp_path):
    path = write_config(tmp_path / "exp.yaml", digits_config(experiment="prep", method="finetune",
                                                             search={"lr": {"float": [0.001, 0.1]}}, train={"epochs": 400}))
    driver = start(path, "--cache-dir", str(tmp_path / "cache"), "--storage", str(tmp_path / "rr"), cwd=tmp_path, log="prep")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "original" not in (tmp_path / "prep.err").read_text():
        time.sleep(0.2)
    driver.send_signal(signal.SIGTERM)
    assert driver.wait(timeout=60) == 143
    err = (tmp_path / "prep.err").read_text()
    assert "interrupted (stopped by SIGTERM)" in err and "--resume" not in err and "Traceback" not in err, err[-2000:]


def test_many_processes_opening_one_fresh_sqlite_store_at_once_all_work(tmp_path):
    """Two sweeps (or a sweep and a reader) started at once in a fresh directory: each creates the store."""
    code = ("import sys; from ray_unlearn.tracking import SweepTracker; t = SweepTracker(None, sys.argv[1]); "
            "t.start_sweep('sw', tags={}, params={}, metrics={}, files={}); print('ok', t.experiment_id)")
    procs = [subprocess.Popen([sys.executable, "-c", code, f"race-{i % 2}"], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-1500:] for _, e in outs]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    for experiment in ("race-0", "race-1"):
        assert len(sweep_runs(client, experiment)) == 2


def test_best_on_an_unknown_store_or_experiment_writes_nothing(tmp_path, mlflow_server):
    out = run_cli("best", "no-such-experiment", cwd=tmp_path)
    assert_user_error(out, "no MLflow store at", "mlflow.db")
    assert not (tmp_path / "mlflow.db").exists()
    assert_user_error(run_cli("best", "no-such-experiment", "--tracking-uri", mlflow_server.url, cwd=tmp_path),
                      "no MLflow experiment named 'no-such-experiment'")
    assert MlflowClient(mlflow_server.url).get_experiment_by_name("no-such-experiment") is None


@pytest.mark.parametrize("args, needle", [
    (["--device", "bogus"], "--device: 'bogus' is not a torch device"),
    (["--device", "cuda"], "--device: cuda asked for, but this machine has"),
    (["--threads", "-1"], "--threads: must be >= 1, got -1"),
])
@pytest.mark.parametrize("command", ["run", "prepare", "tune"])
def test_device_and_threads_are_checked_before_anything_runs(command, args, needle, tmp_path):
    import torch

    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    path = write_config(tmp_path / "exp.yaml", digits_config(search={"lr": {"float": [0.001, 0.1], "start": 0.01}}))
    out = run_cli(command, str(path), *args, "--cache-dir", str(tmp_path / "cache"), cwd=tmp_path)
    assert_user_error(out, needle)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_ui_takes_the_next_free_port_and_a_signal_stops_the_server_it_started(tmp_path, mlflow_server):
    import socket
    import urllib.request

    from ..conftest import free_port

    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        ui = subprocess.Popen([sys.executable, "-m", "ray_unlearn.cli", "ui", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}",
                               "--port", str(port)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
        try:
            link = ""
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not link and ui.poll() is None:
                line = ui.stdout.readline()
                link = line.split("open: ", 1)[1].strip() if line.startswith("open: ") else ""
            assert link, ui.stderr.read()[-2000:]
            used = int(link.split(":")[2].split("/")[0])
            assert used != port, "never a link to the server that holds the asked-for port"
            with urllib.request.urlopen(f"http://127.0.0.1:{used}/health", timeout=10) as r:
                assert r.status == 200
            ui.send_signal(signal.SIGTERM)
            assert ui.wait(timeout=60) == 143
        finally:
            if ui.poll() is None:
                os.killpg(ui.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{used}/health", timeout=2).close()
            time.sleep(0.5)
        except OSError:
            break
    else:
        raise AssertionError("the MLflow server `ui` started outlived it")


def test_run_help_says_what_run_uses(tmp_path):
    out = run_cli("run", "--help", cwd=tmp_path)
    assert "`start:` value of each searched hyperparameter" in out.stdout and "is ignored" not in out.stdout


def test_a_uri_storage_sweep_is_locked_by_a_lease_that_a_dead_driver_cannot_keep(mlflow_server, caplog):
    """Where the storage is a URI there is no file to lock: the lease in the parent run's tags is renewed by
    its holder; a second driver is refused while it is fresh and takes it over once it is stale."""
    import json

    from ray_unlearn.driver_lock import LEASE_SECONDS, LEASE_TAG, Lease, SweepLocked
    from ray_unlearn.tracking import SweepTracker

    tracker = SweepTracker(mlflow_server.url, f"lease-{uuid.uuid4().hex[:8]}")
    tracker.start_sweep("sw", tags={}, params={}, metrics={}, files={})
    first = Lease(tracker, "sw")
    first.acquire()
    try:
        with pytest.raises(SweepLocked, match=rf"sweep sw is already running: host .*, pid {os.getpid()}"):
            Lease(tracker, "sw").acquire()
    finally:
        first._stop.set()  # its driver dies: no more renewals, the tag stays
    held = json.loads(tracker.parent_tag(LEASE_TAG))
    tracker.set_parent_tag(LEASE_TAG, json.dumps({**held, "beat": time.time() - LEASE_SECONDS - 1}))
    second = Lease(tracker, "sw")
    with caplog.at_level("WARNING"):
        second.acquire()
    assert "taking over the stale lease" in caplog.text
    assert json.loads(tracker.parent_tag(LEASE_TAG))["nonce"] == second.mine["nonce"]
    second.release()
    assert tracker.parent_tag(LEASE_TAG) == ""
