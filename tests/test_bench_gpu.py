"""bench/gpu.py, the GPU path's bench, runs start to finish in its CPU smoke form and prints every
row of its table (so the script cannot rot between the rare runs on a GPU machine)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS = [
    "device", "torch",
    "ceiling, plain loop, batch 8", "engine train.fit, batch 8, crop_flip", "engine train.fit, batch 8, none",
    "tune x2 packed (gpu 0), batch 8",
    "references (original + retrain), 1 epoch each",
    "amun trial: attack", "amun trial: unlearning per epoch", "amun trial: evaluation per epoch / final",
    "amun trial: wall, peak memory",
    "mixunlearn_agnostic trial: unlearning per epoch", "mixunlearn_agnostic trial: evaluation per epoch / final",
    "audit: retrain member", "audit: amun member",
    "est. 64-trial cifar10_amun sweep, no early stopping", "est. 64-trial cifar10_amun sweep, ASHA",
]


def test_the_gpu_bench_smoke_run_prints_every_row(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--smoke", "--work", str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    for row in ROWS:
        assert any(line.startswith(row) for line in lines), f"no row {row!r} in:\n{proc.stdout}"
    assert "skipped" not in proc.stdout and "no timed epochs" not in proc.stdout, proc.stdout
    packed = next(line for line in lines if line.startswith("tune x2 packed"))
    assert "img/s" in packed and "per trial" in packed and "trials on cpu" in packed
