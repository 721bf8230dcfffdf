"""bench/scale.py, the driver-scaling bench, runs start to finish in its smoke form and prints every
arm's row and the real-trial rows (so the script cannot rot between the lead's full runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARMS = ["tune alone", "ray-unlearn", "optuna alone"]
REAL = ["plain process, same trial work", "plain process, no per-epoch report", "inside Ray (Tune, 1 slot)"]


def test_the_scale_bench_smoke_run_prints_every_arm(tmp_path, cache_dir):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "scale.py"), "--smoke", "--cache-dir", str(cache_dir)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    for arm in ARMS:
        width = len(arm.split())
        rows = [line.split()[width:] for line in lines if line.startswith(arm + " ") and line.split()[width].isdigit()]
        assert len(rows) == 2, f"arm {arm!r}: its row as it completed and in the final table:\n{proc.stdout}"
        assert rows[0] == rows[1] and rows[0][0] == "6", f"{arm}: {rows}"
        assert all(cell not in ("nan", "inf") for cell in rows[0]), f"{arm}: {rows[0]}"
    for where in REAL:
        assert any(line.startswith(where) for line in lines), f"no row {where!r} in:\n{proc.stdout}"
    product = next(line for line in proc.stderr.splitlines() if line.startswith("ray-unlearn 6x2:"))
    assert "errors 0" in product and "trials 6" in product and "dropped writes 0" in product, product
    assert "_end_trial 6 x" in product, "every trial's MLflow run ended through the timed writer"
