"""ray_unlearn.i2i is plain PyTorch: it never imports ray, optuna or mlflow."""

from __future__ import annotations

import subprocess
import sys

from tests.test_layering import FORBIDDEN, files, imported_modules


def test_i2i_never_imports_ray_optuna_or_mlflow():
    for path in files("i2i"):
        bad = {m for m in imported_modules(path) if m.split(".")[0] in FORBIDDEN}
        assert not bad, f"{path} imports {sorted(bad)}"


def test_importing_i2i_loads_none_of_them():
    code = "import sys, ray_unlearn.i2i; print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'optuna', 'mlflow')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
