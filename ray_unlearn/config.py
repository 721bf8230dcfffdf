"""YAML experiment file -> validated, frozen dataclasses.

One file is one experiment (see README "The YAML"). Everything is checked
before anything starts: unknown keys, methods, datasets, archs and
hyperparameters, bad types, empty or inverted ranges. Each problem is a
`ConfigError` naming the file, key path, bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import yaml

from .errors import ConfigError
from .schema import from_mapping, option, to_mapping, unknown_key_error, unknown_name
from .space import SearchDim
from .tasks import all_tasks, get_task


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
class ObjectiveConfig:
    kind: Literal["combined", "avg_gap", "pareto"] = "combined"
    retained: str | None = option(None, help="val_acc (default), test_acc or retain_acc; task i2i: val_psnr, retain_psnr, test_psnr")
    mia_weight: float = option(1.0, ge=0.0)
    forget_weight: float = option(0.0, ge=0.0, help="weight of |UA - UA_retrain| subtracted from the score")
    mia: str = option("efficacy", help="the MIA of the score's |MIA - MIA_retrain| term: efficacy (SVC on confidence, "
                                       "SalUn) or asr (LAF's attack on sorted softmax, MixUnlearn); classification only")
    confidence_weight: float = option(0.0, ge=0.0, help="weight of forget_conf_distance (W1 between the forget set's "
                                                        "logit-scaled confidences under the model and the retrain "
                                                        "model) subtracted from the score; a continuous signal")
    example_weight: float = option(0.0, ge=0.0, help="weight of example_gap subtracted from the score: per forget example, "
                                                     "|phi - mu| / sigma against a cached population of retrained models "
                                                     "(objective.population); classification only")
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
        if self.population and self.population < MIN_POPULATION or self.example_weight and not self.population:
            raise ConfigError("objective.population", f"needs at least {MIN_POPULATION} retrained models for a per-example "
                                                      f"spread{' (example_weight is set)' if self.example_weight else ''}, "
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


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """One method of an experiment: its fixed values and its search space."""

    name: str
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    search: Mapping[str, SearchDim] = dataclasses.field(default_factory=dict)

    def start_point(self) -> dict[str, Any]:
        """Searched hyperparameters' `start:` values (what `run` uses and the sweep tries first)."""
        return {name: dim.start for name, dim in self.search.items() if dim.start is not None}

    def complete(self, partial: Mapping[str, Any]) -> dict[str, Any]:
        """A value for every searched hyperparameter: `partial`'s, else the default if searchable, else the middle."""
        import math

        defaults = dataclasses.asdict(self.params())
        point = {}
        for name, dim in self.search.items():
            if name in partial:
                point[name] = partial[name]
            elif dim.contains(defaults.get(name)):
                point[name] = defaults[name]
            elif dim.kind == "categorical":
                point[name] = dim.choices[0]
            else:
                mid = math.sqrt(dim.low * dim.high) if dim.log else (dim.low + dim.high) / 2
                point[name] = int(round(mid)) if dim.kind == "int" else mid
        return point

    def params(self, sampled: Mapping[str, Any] | None = None) -> Any:
        """The method's hyperparameter instance: defaults, then fixed values, then `sampled` ones."""
        from .hparams import make_params
        from .registry import CATALOG

        return make_params(CATALOG[self.name].Params, {**self.fixed, **(sampled or {})}, path="fixed")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A validated experiment: everything `prepare`, `run` and `tune` need.

    `method: amun` gives one MethodSpec; `method: [amun, salun]` gives several,
    with `fixed:` and `search:` keyed by method, and the sweep chooses the method
    too (its trial configs then hold `method` and `<method>.<hyperparameter>` keys).
    """

    experiment: str
    methods: tuple[MethodSpec, ...]
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    objective: ObjectiveConfig
    tune: TuneConfig
    tracking: TrackingConfig
    multi: bool = False
    task: str = "classification"
    # search.points_to_evaluate: complete trial configs the sweep evaluates first (after start: points)
    points: tuple[Mapping[str, Any], ...] = ()
    source: str = "<config>"
    # the sections the task reads (task: i2i -> {"i2i": I2IConfig(...)}), also readable as attributes: exp.i2i
    sections: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        sections = self.__dict__.get("sections") or {}
        if name in sections:
            return sections[name]
        raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}")

    @property
    def method(self) -> str:
        """The method's name; for a multi-method experiment, the names joined by '|'."""
        return "|".join(m.name for m in self.methods)

    @property
    def single(self) -> MethodSpec:
        if self.multi:
            raise ConfigError("method", f"this needs one method, but the experiment lists {self.method.replace('|', ', ')}; "
                                        "export one with `ray-unlearn best --export`, or set `method:` to one name")
        return self.methods[0]

    @property
    def fixed(self) -> Mapping[str, Any]:
        return self.single.fixed

    @property
    def search(self) -> Mapping[str, SearchDim]:
        return self.single.search

    def spec(self, name: str) -> MethodSpec:
        return next(m for m in self.methods if m.name == name)

    def searched(self) -> bool:
        return self.multi or any(m.search for m in self.methods)

    def resolve(self, config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """(method name, its sampled hyperparameters) of a trial config."""
        if not self.multi:
            return self.methods[0].name, dict(config)
        name = config["method"]
        prefix = f"{name}."
        return name, {k[len(prefix):]: v for k, v in config.items() if k.startswith(prefix)}

    def config_for(self, name: str, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """The trial config that `resolve` maps back to (name, sampled)."""
        return trial_config(name, sampled, self.multi)

    def start_point(self) -> dict[str, Any]:
        return self.single.start_point()

    def warm_start(self) -> list[dict[str, Any]]:
        """Trial configs evaluated before the sampler proposes any: every `start:` point, then points_to_evaluate."""
        starts = [self.config_for(m.name, m.complete(m.start_point())) for m in self.methods if m.start_point()]
        return starts + [dict(p) for p in self.points]

    def method_params(self, config: Mapping[str, Any] | None = None) -> Any:
        """The hyperparameter instance of the method a trial config names."""
        if config is None and self.multi:
            self.single  # raises: which method?
        name, sampled = self.resolve(config or {})
        return self.spec(name).params(sampled)

    def to_dict(self) -> dict:
        """Plain data that `parse_experiment` reads back to an equal Experiment."""
        out: dict[str, Any] = {"experiment": self.experiment, "task": self.task}
        if self.multi:
            out["method"] = [m.name for m in self.methods]
            out["fixed"] = {m.name: dict(m.fixed) for m in self.methods if m.fixed}
            out["search"] = {m.name: {k: d.to_yaml() for k, d in m.search.items()} for m in self.methods if m.search}
        else:
            m = self.methods[0]
            out.update(method=m.name, fixed=dict(m.fixed), search={k: d.to_yaml() for k, d in m.search.items()})
        if self.points:
            out["search"]["points_to_evaluate"] = [dict(p) for p in self.points]
        for name, section in self.sections.items():
            out[name] = to_mapping(section)
        for name in _SECTIONS:
            out[name] = to_mapping(getattr(self, name))
        return out

    def replace(self, **changes: Any) -> "Experiment":
        return dataclasses.replace(self, **changes)

    def reseeded(self, seed: int) -> "Experiment":
        """This experiment on another seed: data split and forget set (`data.seed`), reference models
        (`train.seed`) and method seed (`tune.seed`) all `seed`, as the re-check and the held-out
        confirmation move them."""
        return dataclasses.replace(self, data=dataclasses.replace(self.data, seed=seed),
                                   train=dataclasses.replace(self.train, seed=seed),
                                   tune=dataclasses.replace(self.tune, seed=seed))


def load_experiment(path: str | os.PathLike, overrides: Sequence[str] = ()) -> Experiment:
    """Read, override and validate an experiment file."""
    source = str(path)
    raw = read_yaml(Path(path))
    raw = apply_overrides(raw, overrides, source=source)
    return parse_experiment(_relative_to(raw, Path(path).parent), source=source)


def _relative_to(raw: Any, folder: Path) -> Any:
    """Relative paths a YAML names (a deletion request `data.forget.file`, `model.checkpoint`,
    `model.retrain_checkpoint`) are read from the YAML file's folder: made absolute here, so a run's
    logged config and `best --export` still find them."""
    def absolute(value: Any) -> Any:
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            return str((folder / value).resolve())
        return value

    if not isinstance(raw, dict):
        return raw
    forget = raw.get("data", {}).get("forget") if isinstance(raw.get("data"), dict) else None
    if isinstance(forget, dict) and "file" in forget:
        raw = {**raw, "data": {**raw["data"], "forget": {**forget, "file": absolute(forget["file"])}}}
    model = raw.get("model")
    if isinstance(model, dict):
        raw = {**raw, "model": {**model, **{k: absolute(model[k]) for k in ("checkpoint", "retrain_checkpoint") if k in model}}}
    return raw


def read_yaml(path: Path) -> Any:
    source = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("", "file not found", source=source) from None
    except IsADirectoryError:
        raise ConfigError("", "is a directory, expected a YAML file", source=source) from None
    except OSError as err:
        raise ConfigError("", f"cannot be read: {err.strerror}", source=source) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError("", f"is not UTF-8 text (byte {err.start}: {data[err.start:err.start + 1]!r})", source=source) from None
    return parse_yaml_text(text, source)


def parse_yaml_text(text: str, source: str) -> Any:
    try:
        data = yaml.load(text, Loader=_SafeLoaderWithoutAliases)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as err:
        raise err.with_source(source) from None
    except RecursionError:  # PyYAML composes nested nodes recursively
        raise ConfigError("", f"YAML nesting is too deep (an experiment needs at most {MAX_DEPTH} levels)", source=source) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError("", f"YAML syntax error: {where}{problem}", source=source) from None
    if _depth(data) > MAX_DEPTH:
        raise ConfigError("", f"YAML nesting is too deep (an experiment needs at most {MAX_DEPTH} levels)", source=source)
    return data


MAX_DEPTH = 32


def _depth(value: Any) -> int:
    """Nesting depth of lists and mappings, without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return deepest


class _SafeLoaderWithoutAliases(yaml.SafeLoader):
    """yaml.safe_load, refusing aliases: an experiment needs none, and they allow 'billion laughs' bombs."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError("", f"YAML aliases (*{event.anchor}) are not supported, line {event.start_mark.line + 1}; write the value out")
        return super().compose_node(parent, index)


def apply_overrides(raw: Any, overrides: Sequence[str], source: str = "<config>") -> Any:
    """Apply `--set key.path=value` overrides (values parsed as YAML) to a raw mapping."""
    if not overrides:
        return raw
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("", f"the file must hold a mapping of {', '.join(_TOP_KEYS)}", source=source)
    raw = _deep_copy(raw)
    for item in overrides:
        where = f"--set {item}"
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("", "expected key.path=value, e.g. --set train.epochs=5", source=where)
        value = parse_yaml_text(text, where) if text.strip() else None
        parts = key.strip().split(".")
        node = raw
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(".".join(parts[: depth + 1]), f"is {child!r}, not a mapping, so {key} cannot be set", source=where)
            node = child
        node[parts[-1]] = value
        _unsearch(raw, parts)
    return raw


def _unsearch(raw: dict, parts: list[str]) -> None:
    """`--set fixed.lr=0.1` on a searched `lr` fixes it: the override is the user's explicit intent."""
    if len(parts) < 2 or parts[0] != "fixed":
        return
    search = raw.get("search")
    for key in (parts[1:],):  # fixed.lr (one method) or fixed.<method>.lr (several)
        node = search
        for part in key[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(key[-1], None)


def parse_experiment(raw: Any, source: str = "<config>") -> Experiment:
    try:
        return _parse(raw)
    except ConfigError as err:
        raise err.with_source(source) from None


def _parse(raw: Any) -> Experiment:
    if not isinstance(raw, Mapping):
        raise ConfigError("", f"the file must hold a mapping with keys {', '.join(_TOP_KEYS)}, got {type(raw).__name__}")
    for key in raw:
        if key not in _TOP_KEYS:
            raise unknown_key_error(str(key), _TOP_KEYS, "")
    for key in ("experiment", "method"):
        if key not in raw:
            raise ConfigError(key, "is required", value=None)
    name = raw["experiment"]
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("experiment", f"must be a non-empty name, got {name!r}", value=name)
    task = raw.get("task", "classification")
    kind = get_task(task)
    for key, owner in _TASK_SECTIONS.items():
        if key in raw and key not in kind.sections:
            raise ConfigError(key, f"is only read when task is {owner!r}", value=raw[key])
    task_sections = {key: from_mapping(cls, raw.get(key), key) for key, cls in kind.sections.items()}
    sections = {key: from_mapping(cls, raw.get(key), key) for key, cls in _SECTIONS.items()}
    sections["objective"] = _resolve_retained(sections["objective"], kind.retained, task)
    for weight in (f.name for f in dataclasses.fields(ObjectiveConfig) if f.name.endswith("_weight")):
        if getattr(sections["objective"], weight) and weight not in UNIVERSAL_WEIGHTS and weight not in kind.weights:
            raise ConfigError(f"objective.{weight}", f"task {task} has no metric this weight applies to; its weights: "
                                                     f"{', '.join([*UNIVERSAL_WEIGHTS, *kind.weights])}",
                              value=getattr(sections["objective"], weight))
    if sections["objective"].population and not kind.per_example_reference:
        raise ConfigError("objective.population", f"task {task} has no per-example reference (example_gap); "
                                                  "leave population and example_weight at 0", value=sections["objective"].population)
    if sections["objective"].mia not in kind.mia_gaps:
        raise ConfigError("objective.mia", f"{sections['objective'].mia!r} is not allowed for task {task}; choose one of "
                                           f"{', '.join(kind.mia_gaps)}", value=sections["objective"].mia)
    _check_registry_names(sections["data"], sections["model"], kind)
    method = raw["method"]
    fixed = _or_empty(raw.get("fixed"))  # `fixed:` left empty is null; `fixed: 0` or `[]` is a mistake
    search = _or_empty(raw.get("search"))
    for key, value in (("fixed", fixed), ("search", search)):
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"must be a mapping of hyperparameter names, got {value!r}", value=value)
    search = dict(search)
    points_raw = search.pop("points_to_evaluate", None)
    multi = isinstance(method, list)
    if multi:
        methods = _parse_methods(method, fixed, search, task)
    else:
        methods = (_parse_method(method, fixed, search, "fixed", "search", task),)
    points = _parse_points(points_raw, methods, multi)
    _check_objective_against_tune(sections["objective"], sections["tune"])
    _check_recheck_seeds(sections["tune"].recheck, sections["data"])
    return Experiment(experiment=name.strip(), methods=methods, multi=multi, points=points, task=task, sections=task_sections,
                      **sections)


def _resolve_retained(objective: ObjectiveConfig, allowed: tuple[str, ...], task: str) -> ObjectiveConfig:
    if objective.retained is None:
        return dataclasses.replace(objective, retained=allowed[0])
    if objective.retained not in allowed:
        raise ConfigError("objective.retained", f"{objective.retained!r} is not allowed for task {task}; choose one of "
                                                f"{', '.join(allowed)}", value=objective.retained)
    return objective


def _parse_points(raw: Any, methods: tuple[MethodSpec, ...], multi: bool) -> tuple[dict[str, Any], ...]:
    """search.points_to_evaluate: a list of `defaults` or {hyperparameter: value} (plus `method` when several)."""
    if raw is None:
        return ()
    path = "search.points_to_evaluate"
    if not isinstance(raw, list):
        raise ConfigError(path, f"must be a list of points (mappings, or `defaults`), got {raw!r}", value=raw)
    from .schema import coerce

    points = []
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        if item == "defaults":
            item = {"method": methods[0].name} if multi and len(methods) == 1 else {}
            if multi and len(methods) > 1:
                raise ConfigError(where, "with several methods, write {method: NAME} for a method's defaults", value="defaults")
        if not isinstance(item, Mapping):
            raise ConfigError(where, f"must be a mapping of searched hyperparameters or `defaults`, got {item!r}", value=item)
        item = dict(item)
        if multi:
            name = item.pop("method", None)
            names = [m.name for m in methods]
            if name not in names:
                raise ConfigError(f"{where}.method", f"must name one of {', '.join(names)}, got {name!r}", value=name)
            spec = next(m for m in methods if m.name == name)
        else:
            spec = methods[0]
        values = {}
        for key, value in item.items():
            if key not in spec.search:
                raise ConfigError(f"{where}.{key}", f"is not searched; searched: {', '.join(sorted(spec.search)) or 'nothing'}", value=key)
            dim = spec.search[key]
            kind = int if dim.kind == "int" else float if dim.kind == "float" else type(dim.choices[0])
            value = coerce(value, kind, f"{where}.{key}")
            if not dim.contains(value):
                raise ConfigError(f"{where}.{key}", f"{value!r} is outside the searched range {dim.describe()}", value=value)
            values[key] = value
        points.append(trial_config(spec.name, spec.complete(values), multi))
    return tuple(points)


def trial_config(method: str, sampled: Mapping[str, Any], multi: bool) -> dict[str, Any]:
    """A trial's config: the sampled values, prefixed `<method>.` (plus `method`) when several methods compete."""
    if not multi:
        return dict(sampled)
    return {"method": method, **{f"{method}.{k}": v for k, v in sampled.items()}}


def _parse_method(name: Any, fixed: Mapping, search: Mapping, fixed_path: str, search_path: str, task: str) -> MethodSpec:
    from .hparams import make_params, parse_search

    method_cls = _lookup_method(name)
    if method_cls.task != task:
        from .registry import CATALOG

        fits = sorted(n for n, c in CATALOG.items() if c.task == task)
        raise ConfigError("method", f"{name} is a method for task: {method_cls.task}, but this experiment's task is {task}; "
                                    f"methods for {task}: {', '.join(fits)}", value=name)
    for key, value in ((fixed_path, fixed), (search_path, search)):
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"must be a mapping of {name}'s hyperparameter names, got {value!r}", value=value)
    both = sorted(set(fixed) & set(search))
    if both:
        raise ConfigError(f"{search_path}.{both[0]}", "is also under 'fixed'; a hyperparameter is either fixed or searched", value=both[0])
    params = make_params(method_cls.Params, fixed, path=fixed_path)
    space = parse_search(method_cls.Params, search, path=search_path)
    return MethodSpec(name=name, fixed={k: getattr(params, k) for k in fixed}, search=space)


def _parse_methods(names: list, fixed: Mapping, search: Mapping, task: str) -> tuple[MethodSpec, ...]:
    """`method: [a, b]`: fixed/search keyed by method name."""
    if not names:
        raise ConfigError("method", "the list of methods is empty", value=names)
    for i, name in enumerate(names):
        try:
            _lookup_method(name)
        except ConfigError as err:
            raise ConfigError(f"method[{i}]", err.problem, value=name) from None
        if names.index(name) != i:
            raise ConfigError(f"method[{i}]", f"{name!r} is listed twice", value=name)
    for key, value in (("fixed", fixed), ("search", search)):
        for m in value:
            if m not in names:
                raise ConfigError(f"{key}.{m}", f"with several methods, {key}: is keyed by method name; "
                                                f"{m!r} is not one of {', '.join(names)}", value=m)
    return tuple(_parse_method(n, _or_empty(fixed.get(n)), _or_empty(search.get(n)), f"fixed.{n}", f"search.{n}", task) for n in names)


def _check_objective_against_tune(objective: ObjectiveConfig, tune: TuneConfig) -> None:
    if objective.kind == "pareto" and tune.scheduler == "asha":
        raise ConfigError(
            "tune.scheduler",
            "asha needs a single metric, but objective.kind is 'pareto'; use scheduler: none or a combined objective",
            value="asha",
        )


def _check_recheck_seeds(recheck: RecheckConfig, data: DataConfig) -> None:
    if recheck.top and data.seed in recheck.seeds:
        i = recheck.seeds.index(data.seed)
        raise ConfigError(f"tune.recheck.seeds[{i}]", f"seed {data.seed} is the sweep's own data.seed; a re-check runs on "
                                                      "seeds the sweep never used", value=data.seed)


def _check_registry_names(data: DataConfig, model: ModelConfig, task: Any) -> None:
    """The dataset exists (and has its root, if read from one); the task accepts it and the model."""
    from .data.info import CATALOG as DATASETS

    if data.dataset not in DATASETS:
        raise unknown_name("data.dataset", data.dataset, list(DATASETS), "dataset")
    info, _ = DATASETS[data.dataset]
    if info.lazy and not data.root:
        raise ConfigError("data.root", f"is required for dataset {data.dataset}: a directory with one sub-directory of "
                                       "images per class (or give --data-dir)", value=None)
    task.check_config(data, model, info)


def _lookup_method(name: Any) -> Any:
    """The registry's entry of method `name` (task, Params; no torch)."""
    from .registry import CATALOG

    if not isinstance(name, str):
        raise ConfigError("method", f"must be a method name, got {name!r}; see `ray-unlearn methods`", value=name)
    if name not in CATALOG:
        raise unknown_name("method", name, list(CATALOG), "method")
    return CATALOG[name]


def _or_empty(value: Any) -> Any:
    return {} if value is None else value


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def dump_yaml(data: Mapping[str, Any]) -> str:
    return yaml.safe_dump(to_mapping(data), sort_keys=False, default_flow_style=None)
