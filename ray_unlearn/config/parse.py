"""Raw YAML data -> a validated `Experiment`: every key, method, dataset, arch and hyperparameter checked
before anything starts; each problem a `ConfigError` naming the file, key path, bad value and what is allowed."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import ConfigError
from ..schema import from_mapping, unknown_key_error, unknown_name
from ..tasks import get_task
from .experiment import Experiment, MethodSpec, trial_config
from .sections import (
    _SECTIONS,
    _TASK_SECTIONS,
    _TOP_KEYS,
    UNIVERSAL_WEIGHTS,
    DataConfig,
    ModelConfig,
    ObjectiveConfig,
    RecheckConfig,
    TuneConfig,
)
from .yaml_io import _relative_to, apply_overrides, read_yaml


def load_experiment(path: str | os.PathLike, overrides: Sequence[str] = ()) -> Experiment:
    """Read, override and validate an experiment file."""
    source = str(path)
    raw = read_yaml(Path(path))
    raw = apply_overrides(raw, overrides, source=source)
    return parse_experiment(_relative_to(raw, Path(path).parent), source=source)


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
    from ..schema import coerce

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


def _parse_method(name: Any, fixed: Mapping, search: Mapping, fixed_path: str, search_path: str, task: str) -> MethodSpec:
    from ..hparams import make_params, parse_search

    method_cls = _lookup_method(name)
    if method_cls.task != task:
        from ..registry import CATALOG

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
    from ..data.info import CATALOG as DATASETS

    if data.dataset not in DATASETS:
        raise unknown_name("data.dataset", data.dataset, list(DATASETS), "dataset")
    info, _ = DATASETS[data.dataset]
    if info.lazy and not data.root:
        raise ConfigError("data.root", f"is required for dataset {data.dataset}: a directory with one sub-directory of "
                                       "images per class (or give --data-dir)", value=None)
    task.check_config(data, model, info)


def _lookup_method(name: Any) -> Any:
    """The registry's entry of method `name` (task, Params; no torch)."""
    from ..registry import CATALOG

    if not isinstance(name, str):
        raise ConfigError("method", f"must be a method name, got {name!r}; see `ray-unlearn methods`", value=name)
    if name not in CATALOG:
        raise unknown_name("method", name, list(CATALOG), "method")
    return CATALOG[name]


def _or_empty(value: Any) -> Any:
    return {} if value is None else value
