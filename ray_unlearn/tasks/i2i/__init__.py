"""task: i2i — forget images from a masked-autoencoder image-to-image model (docs/references.md#image-to-image-references).

The I2I metrics map onto the classification vocabulary where the meaning is the same (`mia`,
`mia_gap`, `avg_gap`), so the objective, Tune, MLflow and `best` need no second code path.
This module imports no torch: config validation reads it. References and trials are in
`references.py` and `trial.py`, imported when they run.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ...errors import ConfigError
from ...i2i.catalog import CATALOG
from ...schema import option
from ..base import Metric, Progress, Task


@dataclasses.dataclass(frozen=True)
class I2IConfig:
    """task: i2i only: the backdoor audit (docs/references.md#the-backdoor)."""

    backdoor: bool = option(True, help="plant a trigger -> checkerboard backdoor in part of D_f before training the original")
    backdoor_fraction: float = option(0.5, gt=0.0, le=1.0, help="share of D_f that carries the backdoor")


class I2ITask(Task):
    name = "i2i"
    methods = CATALOG
    retained = ("val_psnr", "retain_psnr", "test_psnr")
    forget_gap = "forget_psnr_gap"
    metrics = (
        Metric("mia", "max"), Metric("mia_gap", "min"), Metric("avg_gap", "min"), Metric("test_mia_gap", "min"),
        Metric("test_avg_gap", "min"), Metric("seconds", "min"), Metric("val_psnr", "max"), Metric("retain_psnr", "max"),
        Metric("test_psnr", "max"), Metric("forget_psnr_gap", "min"), Metric("divergence_gap", "min"),
        Metric("forget_divergence", "max"),  # moves up from the original's 0; its gap to retrain is what is scored
        Metric("backdoor_success", "min"),  # the planted trigger's success on the forget set: gone when forgotten
    )
    trial_columns = ("val_psnr", "forget_divergence", "mia")
    reference_columns = ("retain_psnr", "forget_psnr", "val_psnr", "forget_divergence", "mia", "backdoor_success", "seconds")
    rank_columns = ("val_psnr", "retain_psnr", "forget_divergence", "mia", "mia_gap", "backdoor_success", "test_psnr")
    best_columns = (("val_psnr", "forget_divergence"), ("test_psnr",))
    spread_metrics = ("score", "val_psnr", "forget_divergence", "mia", "mia_gap", "avg_gap", "backdoor_success", "test_psnr",
                      "test_avg_gap")
    sections = {"i2i": I2IConfig}

    def check_config(self, data: Any, model: Any, info: Any) -> None:
        if model.arch != "autoencoder":
            raise ConfigError("model.arch", f"task i2i trains a masked autoencoder: write arch: autoencoder, got {model.arch!r}", value=model.arch)
        if len(info.input_shape) != 3:
            raise ConfigError("data.dataset", f"task i2i needs images; {data.dataset} gives shape {info.input_shape}", value=data.dataset)

    def reference_key(self, exp: Any, splits: Any) -> str:
        from .references import reference_key

        return reference_key(exp, splits)

    def prepare(self, exp: Any, store: Any, device: Any, progress: Progress | None = None, splits: Any = None,
                runner: Any = None) -> tuple[Any, list[str]]:
        from .references import prepare_references

        return prepare_references(exp, store, device, progress, splits)

    def trial_setup(self, exp: Any, refs: Any, device: Any) -> Any:
        from .trial import trial_setup

        return trial_setup(exp, refs, device)

    def contract_problem(self) -> Any:
        from .contract import problem

        return problem()

