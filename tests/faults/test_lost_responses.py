"""A request that reached the MLflow server but whose response was lost (the connection
dropped on the way back) must not leave two child runs for one trial.

Between the tracker and the session's real MLflow server sits a small TCP proxy
that forwards every request and, when armed, closes the client's connection
instead of relaying the server's answer to the next `runs/create`: the run exists
on the server, the client sees a connection error. Two ways the client can react:
- MLflow's own HTTP retries off: the error reaches our BackgroundWriter, whose retry
  finds the run the lost request created and reuses it;
- MLflow's own HTTP retries on (its default): urllib3 re-sends the POST and a second
  run is created; `drop_duplicates` at the end of the sweep keeps the one written to.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import uuid
from urllib.parse import urlparse

from mlflow.tracking import MlflowClient

from ray_unlearn.tracking import SweepTracker

from .helpers import trial_runs


class DroppingProxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream: str):
        self.upstream = urlparse(upstream)
        self.drop: dict[str, int] = {}
        self.dropped: list[str] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Relay)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def arm(self, path_part: str, times: int = 1) -> None:
        with self.lock:
            self.drop[path_part] = self.drop.get(path_part, 0) + times

    def should_drop(self, path: str) -> bool:
        with self.lock:
            for part, left in self.drop.items():
                if part in path and left > 0:
                    self.drop[part] = left - 1
                    self.dropped.append(path)
                    return True
        return False


class _Relay(socketserver.BaseRequestHandler):
    """One request per connection: forwarded with `Connection: close`, the answer relayed (or not)."""

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            head += chunk
        head, body = head.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            body += self.request.recv(65536)
        path = lines[0].split(b" ")[1].decode()
        lines = [line for line in lines if not line.lower().startswith(b"connection:")] + [b"Connection: close"]
        proxy: DroppingProxy = self.server  # type: ignore[assignment]
        with socket.create_connection((proxy.upstream.hostname, proxy.upstream.port)) as up:
            up.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
            answer = b""
            while chunk := up.recv(65536):
                answer += chunk
        if proxy.should_drop(path):
            return  # the server did the work; the client never hears back
        self.request.sendall(answer)


def test_a_lost_create_response_never_leaves_two_child_runs_for_a_trial(mlflow_server, monkeypatch):
    proxy = DroppingProxy(mlflow_server.url)
    try:
        name = f"lost-{uuid.uuid4().hex[:8]}"
        tracker = SweepTracker(proxy.url, name)
        tracker.start_sweep("sw", tags={}, params={}, metrics={}, files={})

        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the error reaches our writer
        proxy.arm("/runs/create")
        tracker.start_trial("t1", "m-000", params={"lr": 0.1}, tags={})
        tracker.drain()
        assert len(proxy.dropped) == 1
        runs = trial_runs(MlflowClient(mlflow_server.url), name)
        assert [r.data.tags["ray_unlearn.trial_id"] for r in runs] == ["t1"], "the retry reused the run the lost request made"

        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # MLflow's client re-sends the POST itself
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
        proxy.arm("/runs/create")
        tracker.start_trial("t2", "m-001", params={"lr": 0.2}, tags={})
        for trial in ("t1", "t2"):
            tracker.log_epoch(trial, 1, {"score": 1.0})
            tracker.end_trial(trial, metrics={"score": 2.0}, status="ok")
        tracker.drain()
        assert len(proxy.dropped) == 2
        runs = trial_runs(MlflowClient(mlflow_server.url), name)
        assert sorted(r.data.tags["ray_unlearn.trial_id"] for r in runs) == ["t1", "t2", "t2"], \
            "MLflow's own retry made a second run: what drop_duplicates is for"

        dropped = tracker.drop_duplicates()
        assert len(dropped) == 1
        runs = trial_runs(MlflowClient(mlflow_server.url), name)
        assert sorted(r.data.tags["ray_unlearn.trial_id"] for r in runs) == ["t1", "t2"]
        for run in runs:
            assert run.info.status == "FINISHED" and run.data.params["lr"] and run.data.metrics["score"] == 2.0
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_a_lost_create_response_never_leaves_two_parent_runs_for_a_sweep(mlflow_server, monkeypatch):
    """The parent run: created through the same retry-and-look-up path, re-sent copies deleted."""
    proxy = DroppingProxy(mlflow_server.url)
    client = MlflowClient(mlflow_server.url)
    try:
        for retries, sweep in (("0", "sw-our-retry"), ("2", "sw-mlflow-resend")):
            monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", retries)
            monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
            name = f"lost-parent-{uuid.uuid4().hex[:8]}"
            tracker = SweepTracker(proxy.url, name)
            proxy.arm("/runs/create")
            parent = tracker.start_sweep(sweep, tags={}, params={"method": "amun"}, metrics={}, files={})
            assert proxy.dropped and proxy.dropped[-1].endswith("/runs/create")
            proxy.dropped.clear()
            experiment = client.get_experiment_by_name(name)
            live = client.search_runs([experiment.experiment_id], filter_string="tags.`ray_unlearn.kind` = 'sweep'")
            assert [r.info.run_id for r in live] == [parent], f"{retries=}: one parent run, the one written to"
            assert live[0].data.params == {"method": "amun"}
    finally:
        proxy.shutdown()
        proxy.server_close()
