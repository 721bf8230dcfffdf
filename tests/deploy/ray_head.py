"""A real Ray head node started with `ray start --head --block` for one test, and
stopped by process id: every process it started (its session, plus descendants
that left it, like job drivers), never `ray stop`, which would end every Ray
instance on the machine."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
RAY = str(VENV_BIN / "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_ip() -> str:
    import ray.util

    return ray.util.get_node_ip_address()


def head_env(**extra: str) -> dict[str, str]:
    """The venv first on PATH (a job's `ray-unlearn` and `python` come from it), auth off (tests only)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["RAY_AUTH_MODE"] = "disabled"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.update(extra)
    return env


@dataclass
class RayHead:
    proc: subprocess.Popen
    gcs_address: str
    dashboard_url: str
    temp_dir: str
    log_path: Path
    env: dict = field(default_factory=dict)

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]


def start_head(workdir: Path, *, num_cpus: int, num_gpus: int = 0, autoscaling_config: Path | None = None,
               gcs_port: int | None = None, env: dict | None = None, timeout: float = 120) -> RayHead:
    gcs_port = gcs_port or free_port()
    dash_port, agent_port, client_port = free_port(), free_port(), free_port()
    temp_dir = tempfile.mkdtemp(prefix="ru-ray-", dir="/tmp")  # short: Ray's socket paths must stay < 108 bytes
    cmd = [RAY, "start", "--head", "--block", f"--port={gcs_port}", f"--num-cpus={num_cpus}", f"--num-gpus={num_gpus}",
           "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash_port}",
           f"--dashboard-agent-listen-port={agent_port}", f"--ray-client-server-port={client_port}",
           f"--temp-dir={temp_dir}", "--disable-usage-stats"]
    if autoscaling_config:
        cmd.append(f"--autoscaling-config={autoscaling_config}")
    env = env or head_env()
    log_path = workdir / "ray-head.log"
    log = open(log_path, "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir, start_new_session=True)
    head = RayHead(proc, f"{node_ip()}:{gcs_port}", f"http://127.0.0.1:{dash_port}", temp_dir, log_path, env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stop_head(head)
            raise RuntimeError(f"ray start exited ({proc.returncode}):\n{head.log_tail()}")
        try:
            with urllib.request.urlopen(f"{head.dashboard_url}/api/version", timeout=2) as r:
                if r.status == 200 and json.load(r).get("ray_version") and alive_nodes(head.dashboard_url):
                    return head
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.5)
    stop_head(head)
    raise RuntimeError(f"the Ray dashboard did not answer within {timeout} s:\n{head.log_tail()}")


def alive_nodes(dashboard_url: str) -> list:
    """The cluster's alive nodes, from the dashboard's state API (no ray.init in the test process)."""
    from ray.util.state import list_nodes

    return [n for n in list_nodes(address=dashboard_url, raise_on_missing_output=False) if n.state == "ALIVE"]


def _proc_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, session id, state) for every live process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(name)] = (int(fields[1]), int(fields[3]), fields[0])
    return table


def _started_by(leader: int) -> set[int]:
    """The leader's session, plus its descendants that started sessions of their own."""
    table = _proc_table()
    pids = {pid for pid, (_, sid, state) in table.items() if sid == leader and state != "Z"}
    frontier = set(pids) | {leader}
    while frontier:
        frontier = {pid for pid, (ppid, _, state) in table.items() if ppid in frontier and pid not in pids and state != "Z"}
        pids |= frontier
    return pids


def _alive(pids: set[int]) -> set[int]:
    table = _proc_table()
    return {p for p in pids if p in table and table[p][2] != "Z"}


def stop_head(head: RayHead, grace: float = 20) -> None:
    """SIGTERM the `ray start --block` process (it stops what it started), then SIGKILL leftovers by pid."""
    leader = head.proc.pid
    pids = _started_by(leader)
    try:
        os.kill(leader, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        pids |= _started_by(leader)  # the session outlives its leader
        if not _alive(pids | {leader}):
            break
        time.sleep(0.3)
    for pid in _alive(pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        head.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        head.proc.kill()
        head.proc.wait()
    shutil.rmtree(head.temp_dir, ignore_errors=True)
