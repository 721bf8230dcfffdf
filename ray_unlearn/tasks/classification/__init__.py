"""task: classification — forget samples or classes of an image (or sequence) classifier.

This module imports no torch: config validation reads it. References and trials are in
`references.py` and `trial.py`, imported when they run.
"""

from __future__ import annotations

from typing import Any

from ...errors import ConfigError
from ...methods.catalog import CATALOG
from ...models.archs import CATALOG as ARCHS
from ...models.archs import check_arch_name, check_compatible
from ...schema import unknown_name
from ..base import Metric, Progress, Task


class ClassificationTask(Task):
    name = "classification"
    methods = CATALOG
    retained = ("val_acc", "test_acc", "retain_acc")
    forget_gap = "ua_gap"
    metrics = (
        Metric("val_acc", "max"), Metric("test_acc", "max"), Metric("retain_acc", "max"), Metric("forget_acc", "min"),
        Metric("ua", "max"), Metric("mia", "max"), Metric("mia_gap", "min"), Metric("ua_gap", "min"),
        Metric("avg_gap", "min"), Metric("test_mia_gap", "min"), Metric("test_avg_gap", "min"), Metric("seconds", "min"),
        Metric("mia_asr", "max"), Metric("mia_asr_gap", "min"), Metric("test_mia_asr", "max"), Metric("test_mia_asr_gap", "min"),
        Metric("forget_conf_distance", "min", weight="confidence_weight",
               help="weight of forget_conf_distance (W1 between the forget set's logit-scaled confidences under the model "
                    "and the retrain model) subtracted from the score; a continuous signal"),
        Metric("example_gap", "min", weight="example_weight",
               help="weight of example_gap subtracted from the score: per forget example, |phi - mu| / sigma against a "
                    "cached population of retrained models (objective.population); classification only"),
        # the audit (`ray-unlearn audit`), written onto audited runs
        Metric("audit_score", "max"), Metric("audit_forget_quality", "max"), Metric("audit_quality_ratio", "max"),
        Metric("audit_auc", "min"),
    )
    mia_gaps = {"efficacy": "mia_gap", "asr": "mia_asr_gap"}
    per_example_reference = True
    trial_columns = ("val_acc", "forget_acc", "mia")
    reference_columns = ("forget_acc", "retain_acc", "val_acc", "test_acc", "mia", "seconds")
    rank_columns = ("val_acc", "forget_acc", "mia", "mia_gap", "avg_gap", "test_acc")
    best_columns = (("val_acc", "forget_acc"), ("test_acc",))
    spread_metrics = ("score", "val_acc", "forget_acc", "mia", "mia_gap", "avg_gap", "test_acc", "test_avg_gap")

    def check_config(self, data: Any, model: Any, info: Any) -> None:
        if model.arch == "autoencoder":
            raise ConfigError("model.arch", unknown_name("model.arch", model.arch, list(ARCHS), "arch").problem
                              + " (autoencoder is for task: i2i)", value=model.arch)
        check_arch_name(model.arch)
        try:
            check_compatible(model.arch, info.input_shape, data.dataset)
        except ConfigError as err:
            if not info.lazy:
                raise
            raise ConfigError(err.key, err.problem.replace(f"shape {info.input_shape}", "images (C, H, W)"), value=err.value) from None
        if info.lazy:  # its classes are known once loaded: data.check_forget_classes
            return
        for i, c in enumerate(data.forget.classes):
            if not 0 <= c < info.num_classes:
                raise ConfigError(f"data.forget.classes[{i}]", f"class {c} does not exist; {data.dataset} has classes 0..{info.num_classes - 1}", value=c)

    def reference_key(self, exp: Any, splits: Any) -> str:
        from .references import reference_key

        return reference_key(exp, splits)

    def prepare(self, exp: Any, store: Any, device: Any, progress: Progress | None = None, splits: Any = None,
                runner: Any = None) -> tuple[Any, list[str]]:
        from .references import prepare

        refs, trained = prepare(exp, store, device, progress, splits)
        if exp.objective.population:
            from .audit import attach_example_reference

            trained += attach_example_reference(exp, refs, store, device, runner)
        return refs, trained

    def trial_setup(self, exp: Any, refs: Any, device: Any) -> Any:
        from .trial import trial_setup

        return trial_setup(exp, refs, device)

    def contract_problem(self) -> Any:
        from .contract import problem

        return problem()

    def audit(self, exp: Any, refs: Any, configurations: Any, *, models: int, cache_root: str, runner: Any,
              device: Any) -> Any:
        from .audit import audit

        return audit(exp, refs, configurations, models=models, cache_root=cache_root, runner=runner, device=device)

    def audit_member(self, exp: Any, refs: Any, member: Any, store: Any, device: Any) -> tuple[Any, bool]:
        from .audit import member_stats

        return member_stats(exp, refs, member, store, device)
