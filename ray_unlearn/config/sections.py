"""The YAML's sections as frozen dataclasses (`data:`, `model:`, `train:`, `objective:`, `tune:`, `tracking:`),
each key with its default, bounds and help (`schema.option`), and the metric vocabulary they check against."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from ..errors import ConfigError
from ..schema import option
from ..tasks import all_tasks


def _metric_directions() -> dict[str, str]:
    """metric -> "max" or "min"; the vocabulary shared by YAML, Tune, MLflow and `best`: every task's metrics."""
    directions = {"score": "max"}
    for task in all_tasks():
        for metric, direction in task.metric_directions.items():
            directions.setdefault(metric, direction)
    return directions


METRIC_DIRECTIONS = _metric_directions()


@dataclasses.dataclass(frozen=True)
class ForgetConfig:
    kind: Literal["random", "class", "data_level", "ids"] = "random"
    fraction: float = option(0.1, gt=0.0, lt=1.0, help="share of the train set (kind: random) or of each named class "
                                                        "(kind: data_level) that is forgotten")
    classes: tuple[int, ...] = option((), help="class ids whose train samples are forgotten (kind: class), or sampled "
                                               "from (kind: data_level, e.g. [5, 6, 7, 8, 9] with fraction 0.4)")

    file: str | None = option(None, help="kind: ids - a deletion request: one train-split index per line (image_folder: "
                                         "one image path relative to data.root per line); a relative path is read from "
                                         "the YAML file's directory")

    def __post_init__(self) -> None:
        if self.kind == "ids" and not self.file:
            raise ConfigError("data.forget.file", "is required when kind is 'ids' (e.g. file: deletion_request.txt)", value=None)
        if self.kind != "ids" and self.file:
            raise ConfigError("data.forget.file", f"only applies to kind: ids, not kind: {self.kind}", value=self.file)
        if self.kind in ("class", "data_level") and not self.classes:
            example = "classes: [0]" if self.kind == "class" else "classes: [5, 6, 7, 8, 9], fraction: 0.4"
            raise ConfigError("data.forget.classes", f"is required when kind is '{self.kind}' (e.g. {example})", value=None)
        if self.kind == "random" and self.classes:
            raise ConfigError("data.forget.classes", "only applies to kind: class or data_level; for kind: random give fraction", value=self.classes)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    dataset: str = "digits"
    root: str | None = option(None, help="directory holding the dataset files (torchvision datasets)")
    download: bool = option(False, help="let torchvision download a missing dataset into root")
    forget: ForgetConfig = dataclasses.field(default_factory=ForgetConfig)
    seed: int = option(0, ge=0, help="seed of the train/val/test split and the forget selection")
    val_fraction: float = option(0.1, gt=0.0, lt=0.5, help="share held out for validation (tuning selects on it)")
    test_fraction: float = option(0.2, gt=0.0, lt=0.5, help="share held out for test where the dataset has no test split")
    max_train: int | None = option(None, ge=10, help="subsample the train set (stratified) for quick runs")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    arch: str = option("small_cnn", help="a built-in or plugin model name, torchvision/<name>, or 'package.module:builder'")
    kwargs: dict[str, Any] = option({}, help="keyword arguments for the builder (import-path, plugin and torchvision models)")
    checkpoint: str | None = option(None, help="your trained original: a state dict for `arch` (torch.save(model.state_dict()));"
                                               " measured, not trained")
    retrain_checkpoint: str | None = option(None, help="your retrained model (else trained with `train:`)")
    mix_layer: str | None = option(None, help="the submodule whose output is MixUnlearn's mix layer (e.g. layer3) for a "
                                              "model without `mix_features`")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Recipe for the original and retrain reference models (docs/references.md#recipes)."""

    epochs: int = option(60, ge=1)
    lr: float = option(0.05, gt=0.0)
    batch_size: int = option(64, ge=1)
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = option(0.9, ge=0.0, lt=1.0)
    weight_decay: float = option(5e-4, ge=0.0)
    schedule: Literal["cosine", "step", "none"] = "cosine"
    milestones: tuple[int, ...] = option((), help="epochs at which schedule 'step' multiplies lr by gamma")
    gamma: float = option(0.1, gt=0.0, le=1.0)
    augment: Literal["auto", "none", "crop_flip"] = "auto"
    seed: int = option(0, ge=0, help="seed of model initialisation and batch order")


MIN_POPULATION = 4  # retrained models a per-example spread needs
UNIVERSAL_WEIGHTS = ("mia_weight", "forget_weight")  # every task has an MIA gap and a forget gap


@dataclasses.dataclass(frozen=True)
class _ObjectiveKeys:
    """The `objective:` keys every task shares; ObjectiveConfig adds one weight per weighted metric."""

    kind: Literal["combined", "avg_gap", "pareto"] = "combined"
    retained: str | None = option(None, help="val_acc (default), test_acc or retain_acc; task i2i: val_psnr, retain_psnr, test_psnr")
    mia_weight: float = option(1.0, ge=0.0)
    forget_weight: float = option(0.0, ge=0.0, help="weight of |UA - UA_retrain| subtracted from the score")
    mia: str = option("efficacy", help="the MIA of the score's |MIA - MIA_retrain| term: efficacy (SVC on confidence, "
                                       "SalUn) or asr (LAF's attack on sorted softmax, MixUnlearn); classification only")
    population: int = option(0, ge=0, help="retrained models of example_gap's per-example reference, trained once per "
                                           "sweep (Ray tasks) and cached, on model seeds the audit never uses; 0: none. "
                                           "At least 4 with example_weight; example_gap is reported whenever it is set")
    pareto: tuple[str, ...] = ()
    max_val_drop: float | None = option(
        10.0, ge=0.0, help="a trial whose val_acc (class-wise forgetting: on the kept classes; task i2i: val_psnr, in dB) ends this "
                           "far below the original model's "
                           "is marked 'collapsed' and gets the worst score"
    )
    collapse_patience: int = option(
        2, ge=0, help="stop a trial early as 'collapsed' once this many per-epoch evaluations in a row show a wrecked "
                      "model (val_acc within 5 points of chance; task i2i: val_psnr below filling the masked block with "
                      "the mean pixel); 0: judge only the final model"
    )

    def __post_init__(self) -> None:
        example_weight = getattr(self, "example_weight", 0.0)
        if self.population and self.population < MIN_POPULATION or example_weight and not self.population:
            raise ConfigError("objective.population", f"needs at least {MIN_POPULATION} retrained models for a per-example "
                                                      f"spread{' (example_weight is set)' if example_weight else ''}, "
                                                      "e.g. population: 8", value=self.population)
        if self.kind == "pareto":
            if len(self.pareto) < 2:
                raise ConfigError("objective.pareto", "pareto needs two or more metrics, e.g. [val_acc, mia_gap]", value=self.pareto)
            for i, m in enumerate(self.pareto):
                if m not in METRIC_DIRECTIONS or m == "score":
                    allowed = ", ".join(k for k in METRIC_DIRECTIONS if k != "score")
                    raise ConfigError(f"objective.pareto[{i}]", f"unknown metric {m!r}; allowed: {allowed}", value=m)
        elif self.pareto:
            raise ConfigError("objective.pareto", "is only read when kind is 'pareto'", value=self.pareto)


def _term_weights() -> list[tuple[str, type, Any]]:
    """One `objective:` weight per weighted metric of any task's metric table, default 0 (no term)."""
    fields: dict[str, Any] = {}
    for task in all_tasks():
        for m in task.metrics:
            if m.weight and m.weight not in fields:
                fields[m.weight] = option(0.0, ge=0.0, help=m.help or f"weight of {m.name} subtracted from the score")
    return [(name, float, spec) for name, spec in fields.items()]


ObjectiveConfig = dataclasses.make_dataclass("ObjectiveConfig", _term_weights(), bases=(_ObjectiveKeys,), frozen=True)
ObjectiveConfig.__module__ = __name__
ObjectiveConfig.__doc__ = """`objective:`: how a trial's metrics become its score (docs/metrics.md#the-objective)."""


@dataclasses.dataclass(frozen=True)
class ResourcesConfig:
    cpu: float = option(1.0, gt=0.0)
    gpu: float = option(0.0, ge=0.0)


@dataclasses.dataclass(frozen=True)
class RecheckConfig:
    """The sweep's re-check rung: its best configurations re-run on seeds the sweep never used."""

    top: int = option(0, ge=0, help="re-run the sweep's K best configurations on every re-check seed and rank them by "
                                    "their mean score over all seeds (recheck_score_mean); 0: off")
    seeds: tuple[int, ...] = option((10, 20), help="data split, forget set, reference models and method seed of each "
                                                   "re-check run; never the held-out confirmation's seeds")

    def __post_init__(self) -> None:
        if self.top and not self.seeds:
            raise ConfigError("tune.recheck.seeds", "give at least one seed when tune.recheck.top is set, e.g. [10, 20]",
                              value=list(self.seeds))
        for i, seed in enumerate(self.seeds):
            if seed < 0:
                raise ConfigError(f"tune.recheck.seeds[{i}]", f"{seed} is out of range; must be >= 0", value=seed)
            if self.seeds.index(seed) != i:
                raise ConfigError(f"tune.recheck.seeds[{i}]", f"seed {seed} is listed twice", value=seed)


@dataclasses.dataclass(frozen=True)
class TuneConfig:
    num_samples: int = option(16, ge=1)
    max_concurrent: int | None = option(None, ge=1, help="default: as many as the cluster's resources hold")
    scheduler: Literal["none", "asha"] = "none"
    grace_period: int = option(1, ge=1, help="ASHA: epochs before a trial may be stopped")
    reduction_factor: float = option(2.0, gt=1.0, help="ASHA: keep 1/reduction_factor at each rung")
    sampler: Literal["tpe", "random"] = "tpe"
    seed: int = option(0, ge=0, help="seed of the sampler and of every trial's method")
    max_failures: int = option(0, ge=0, help="retries of a trial that raised")
    repeats: int = option(1, ge=1, help="seeds per configuration (tune.seed, +1, ...); trials report the mean and spread")
    report_seconds: float = option(
        1.0, ge=0.0, help="least time between a trial's per-epoch reports (each costs an evaluation); 0: every epoch; ASHA: every epoch"
    )
    resources: ResourcesConfig = dataclasses.field(default_factory=ResourcesConfig)
    recheck: RecheckConfig = dataclasses.field(default_factory=RecheckConfig)


@dataclasses.dataclass(frozen=True)
class TrackingConfig:
    uri: str | None = option(None, help="MLflow tracking URI; default sqlite:///mlflow.db in the working directory")
    log_models: bool = option(False, help="store each trial's unlearned weights (model.pt) in its MLflow run")


_SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "objective": ObjectiveConfig,
    "tune": TuneConfig,
    "tracking": TrackingConfig,
}
# sections a task reads (task: i2i reads `i2i:`) -> the task that reads it
_TASK_SECTIONS = {key: task.name for task in all_tasks() for key in task.sections}
_TOP_KEYS = ["experiment", "task", "method", "fixed", "search", *_TASK_SECTIONS, *_SECTIONS]
