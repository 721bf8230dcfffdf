"""`Experiment`: a validated experiment, and `MethodSpec`, one method's fixed values and search space."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ..errors import ConfigError
from ..schema import to_mapping
from ..space import SearchDim
from .sections import _SECTIONS, DataConfig, ModelConfig, ObjectiveConfig, TrackingConfig, TrainConfig, TuneConfig


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
        from ..hparams import make_params
        from ..registry import CATALOG

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


def trial_config(method: str, sampled: Mapping[str, Any], multi: bool) -> dict[str, Any]:
    """A trial's config: the sampled values, prefixed `<method>.` (plus `method`) when several methods compete."""
    if not multi:
        return dict(sampled)
    return {"method": method, **{f"{method}.{k}": v for k, v in sampled.items()}}
