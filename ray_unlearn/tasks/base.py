"""The Task contract: what differs between kinds of unlearning (classification, image-to-image, ...).

Everything above the tasks (config, trial, search, tracking, workflow, commands) asks the
experiment's task, never its name. A task declares, without importing torch, what config
validation and the tables need; it does its torch work (references, trials) in its own modules,
imported only when `prepare` or `trial_setup` is called. Shared trial machinery (statuses, NaN and
collapse handling, per-epoch reporting) is in `tasks.outcome` and `tasks.guards`, below every task.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, ClassVar, Mapping

Progress = Callable[[str, int, int, dict], None]  # (reference model name, epoch, epochs, logs)
Report = Callable[[dict[str, Any]], None]  # a trial's per-epoch metrics, to Tune or a progress bar


@dataclasses.dataclass
class TrialSetup:
    """A task's part of a trial; `ray_unlearn.trial.run_trial` does the rest the same way for every task
    (resolve the method, run it with per-epoch reports, NaN and collapse checks, the result)."""

    data: Any  # what the method reads (methods.base.UnlearnData, i2i.data.I2IData)
    original: Any  # the model the method starts from (a fresh copy of the original)
    evaluate: Callable[[Any, bool], dict[str, float]]  # (model, with_test) -> metrics with `score`
    collapse_key: str  # the figure judged against objective.max_val_drop and, per epoch, against `floor`
    floor: float  # a model at or below it is wrecked (no better than `floor_what`)
    floor_what: str
    finite_keys: tuple[str, ...]  # final figures that must be finite (else the trial diverged)
    unit: str = ""  # of `collapse_key`, for messages
    figures: Callable[[Any], dict[str, bytes]] | None = None  # PNGs for the trial's MLflow run


@dataclasses.dataclass(frozen=True)
class Metric:
    """One figure a task reports: its name, which way is better, and the objective weight that subtracts
    `weight * value` from the score, if one does: declaring it here is all an objective term needs (the
    `objective:` key `weight`, default 0, with `help`, is made from it: config.sections.ObjectiveConfig)."""

    name: str
    better: str  # "max" | "min"
    weight: str = ""
    help: str = ""  # the weight's, for docs and `--help`


class Task(abc.ABC):
    """One kind of unlearning: its methods, accepted data and models, references, trials and vocabulary."""

    name: ClassVar[str]
    methods: ClassVar[Mapping[str, Any]]  # its methods by name: methods.entry.MethodEntry (torch-free catalog)
    retained: ClassVar[tuple[str, ...]]  # objective.retained choices; the first is the default
    forget_gap: ClassVar[str]  # the metric objective.forget_weight multiplies
    # its metric table: the one place a metric's direction and objective term are declared
    metrics: ClassVar[tuple[Metric, ...]] = ()
    metric_directions: ClassVar[Mapping[str, str]]  # name -> "max" | "min", derived from `metrics`
    weights: ClassVar[Mapping[str, str]]  # objective weight -> the metric it subtracts, derived from `metrics`

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "metrics" in cls.__dict__:
            cls.metric_directions = {m.name: m.better for m in cls.metrics}
            cls.weights = {m.weight: m.name for m in cls.metrics if m.weight}
        cls.weights = getattr(cls, "weights", {})
    trial_columns: ClassVar[tuple[str, ...]]  # what progress lines show for a trial (after score)
    reference_columns: ClassVar[tuple[str, ...]]  # what the reference table shows per model
    rank_columns: ClassVar[tuple[str, ...]]  # what the ranked trials table shows after rank/run_name/status/score
    # what `best` shows of a run's metrics: (selection figures, test figures), around the shared mia_gap and avg_gap
    best_columns: ClassVar[tuple[tuple[str, ...], tuple[str, ...]]] = ((), ())
    spread_metrics: ClassVar[tuple[str, ...]] = ("score",)  # figures whose spread over tune.repeats is reported as `<name>_std`
    sections: ClassVar[Mapping[str, type]] = {}  # extra top-level YAML sections it reads (name -> dataclass)
    # objective.mia -> the gap metric the combined score subtracts; the first is the default
    mia_gaps: ClassVar[Mapping[str, str]] = {"efficacy": "mia_gap"}
    # whether `prepare` can add a per-example reference from a retrained population (objective.population)
    per_example_reference: ClassVar[bool] = False

    @abc.abstractmethod
    def check_config(self, data: Any, model: Any, info: Any) -> None:
        """Raise ConfigError unless this task accepts the dataset (`info`, a DatasetInfo) and `model.arch`."""

    @abc.abstractmethod
    def reference_key(self, exp: Any, splits: Any) -> str:
        """The cache key of the references: a hash of exactly what they depend on (not the method, nor the objective)."""

    @abc.abstractmethod
    def prepare(self, exp: Any, store: Any, device: Any, progress: Progress | None = None,
                splits: Any = None, runner: Any = None) -> tuple[Any, list[str]]:
        """Load the reference models (original, retrain) and their metrics from `store`, training what is
        missing; return them (picklable, with .key, .splits, .original_metrics, .retrain_metrics) and the
        names of the models trained now. `runner` trains population models (a per-example reference,
        `objective.population`) where the task has them: Ray tasks in a sweep, in-process otherwise."""

    @abc.abstractmethod
    def trial_setup(self, exp: Any, refs: Any, device: Any) -> "TrialSetup":
        """What differs between tasks in a trial (the skeleton is `ray_unlearn.trial.run_trial`): the data the
        method reads, the model it starts from, the evaluation against the retrain model, the figure judged
        for collapse and its floor, and the figures the trial's MLflow run receives."""

    def contract_problem(self) -> tuple[Callable[[], Any], Any]:
        """A small real problem for `ray_unlearn.testing.check_method`: (a factory of fresh copies of a
        trained original, the data one of this task's methods reads)."""
        raise NotImplementedError(f"task {self.name} has no contract problem")

    # --- optional: the many-model audit (`ray-unlearn audit`, docs/metrics.md#the-audit) ----------

    def audit(self, exp: Any, refs: Any, configurations: Any, *, models: int, cache_root: str, runner: Any,
              device: Any) -> Any:
        """Audit (row name, method, hyperparameters) configurations with `models` unlearned and `models`
        retrained models each; population members are trained through `runner` (see `audit_member`)."""
        from ..errors import ConfigError

        raise ConfigError("task", f"task {self.name} has no audit (yet)", value=self.name)

    def audit_member(self, exp: Any, refs: Any, member: Any, store: Any, device: Any) -> tuple[Any, bool]:
        """(statistics of one population model, whether it was trained now): read from `store`, else trained."""
        from ..errors import ConfigError

        raise ConfigError("task", f"task {self.name} has no audit (yet)", value=self.name)
