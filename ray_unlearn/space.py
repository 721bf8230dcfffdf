"""The search-space vocabulary of the YAML, and its translation to Optuna.

```yaml
search:
  lr:      {float: [1.0e-4, 1.0e-1], log: true}
  steps:   {int: [5, 50]}
  mode:    {choice: [sequential, mixed]}
  epsilon: auto            # the method's declared search range
  epochs:  {int: [3, 20], start: 10}   # start: tried first by the sweep, used by `run`
```
Parsing is plain Python (so a config can be validated without Optuna);
`SearchDim.to_optuna` builds the distribution when a sweep starts.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal, Mapping

from .errors import ConfigError
from .schema import _as_float, _as_int, _check_bounds, describe_bounds

DimKind = Literal["float", "int", "categorical"]
_KIND_KEYS = {"float": "float", "int": "int", "choice": "categorical", "categorical": "categorical"}
_ALLOWED_KEYS = set(_KIND_KEYS) | {"log", "step", "start"}


@dataclasses.dataclass(frozen=True)
class SearchDim:
    """One searched hyperparameter: a numeric range or a list of choices."""

    kind: DimKind
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None
    start: Any = None  # a recommended value: evaluated first by the sweep, used by `run`

    def contains(self, value: Any) -> bool:
        if self.kind == "categorical":
            return value in (self.choices or ())
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return self.low <= value <= self.high and (self.kind != "int" or float(value).is_integer())

    def describe(self) -> str:
        if self.kind == "categorical":
            return "{" + ", ".join(map(str, self.choices or ())) + "}"
        scale = " log" if self.log else ""
        step = f" step {self.step}" if self.step is not None else ""
        return f"[{_fmt(self.low)}, {_fmt(self.high)}]{scale}{step}" + (" int" if self.kind == "int" else "")

    def to_yaml(self) -> dict:
        if self.kind == "categorical":
            out: dict[str, Any] = {"choice": list(self.choices or ())}
        else:
            out = {self.kind: [self.low, self.high]}
            if self.log:
                out["log"] = True
            if self.step is not None:
                out["step"] = self.step
        if self.start is not None:
            out["start"] = self.start
        return out

    def suggest(self, trial: Any, name: str) -> Any:
        """Ask an Optuna trial (define-by-run) for a value of this dimension under `name`."""
        if self.kind == "categorical":
            return trial.suggest_categorical(name, list(self.choices or ()))
        if self.kind == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return trial.suggest_float(name, float(self.low), float(self.high), log=self.log, step=self.step)

    def to_optuna(self) -> Any:
        import optuna.distributions as od

        if self.kind == "categorical":
            return od.CategoricalDistribution(list(self.choices or ()))
        if self.kind == "int":
            return od.IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return od.FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)


def parse_dim(spec: Any, path: str, value_type: type, meta: Mapping[str, Any], default_dim: SearchDim | None) -> SearchDim:
    """Validate one `search:` entry against the hyperparameter it searches."""
    if spec == "auto":
        if default_dim is None:
            raise ConfigError(path, "'auto' needs a declared search range, and this hyperparameter has none; give {float: [low, high]} or {choice: [...]}", value=spec)
        return default_dim
    if not isinstance(spec, Mapping):
        raise ConfigError(
            path,
            f"expected {{float: [low, high]}}, {{int: [low, high]}}, {{choice: [...]}} or auto, got {spec!r}; "
            "put constants under 'fixed:'",
            value=spec,
        )
    unknown = set(spec) - _ALLOWED_KEYS
    if unknown:
        raise ConfigError(f"{path}.{sorted(map(str, unknown))[0]}", f"unknown key; allowed: {', '.join(sorted(_ALLOWED_KEYS))}", value=spec)
    kinds = [k for k in spec if k in _KIND_KEYS]
    if len(kinds) != 1:
        raise ConfigError(path, "give exactly one of float, int, choice", value=spec)
    kind = _KIND_KEYS[kinds[0]]
    body = spec[kinds[0]]
    if kind == "categorical":
        dim = _parse_choices(body, path, value_type, meta, spec)
    else:
        dim = _parse_range(kind, body, spec, path, value_type, meta)
    if "start" not in spec:
        return dim
    from .schema import coerce

    start = coerce(spec["start"], int if dim.kind == "int" else value_type, f"{path}.start", meta)
    if not dim.contains(start):
        raise ConfigError(f"{path}.start", f"{start!r} is outside the searched range {dim.describe()}", value=start)
    return dataclasses.replace(dim, start=start)


def _parse_choices(body: Any, path: str, value_type: type, meta: Mapping[str, Any], spec: Mapping) -> SearchDim:
    if "log" in spec or "step" in spec:
        raise ConfigError(path, "'log' and 'step' apply to float and int ranges, not to choices", value=spec)
    if not isinstance(body, (list, tuple)) or len(body) == 0:
        raise ConfigError(f"{path}.choice", f"must be a non-empty list, got {body!r}", value=body)
    from .schema import coerce

    items = tuple(coerce(v, value_type, f"{path}.choice[{i}]", meta) for i, v in enumerate(body))
    if len(set(items)) != len(items):
        raise ConfigError(f"{path}.choice", f"has repeated values: {list(body)}", value=body)
    return SearchDim("categorical", choices=items)


def _parse_range(kind: DimKind, body: Any, spec: Mapping, path: str, value_type: type, meta: Mapping[str, Any]) -> SearchDim:
    key = f"{path}.{'float' if kind == 'float' else 'int'}"
    if value_type is bool or value_type is str:
        raise ConfigError(key, f"this hyperparameter takes {value_type.__name__} values; use {{choice: [...]}}", value=body)
    if kind == "float" and value_type is int:
        raise ConfigError(key, "this hyperparameter is an integer; use {int: [low, high]}", value=body)
    if not isinstance(body, (list, tuple)) or len(body) != 2:
        raise ConfigError(key, f"must be [low, high], got {body!r}", value=body)
    conv = _as_int if kind == "int" else _as_float
    low, high = conv(body[0], f"{key}[0]"), conv(body[1], f"{key}[1]")
    if low > high:
        raise ConfigError(key, f"low {low} is above high {high}", value=body)
    for value, idx in ((low, 0), (high, 1)):
        try:
            _check_bounds(value, f"{key}[{idx}]", meta)
        except ConfigError as err:
            raise ConfigError(err.key, f"{err.problem} (valid values: {describe_bounds(meta)})", value=value) from None
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{path}.log", f"must be true or false, got {log!r}", value=log)
    if log and low <= 0:
        raise ConfigError(key, f"a log scale needs low > 0, got {low}", value=body)
    step = spec.get("step")
    if step is not None:
        step = conv(step, f"{path}.step")
        if step <= 0:
            raise ConfigError(f"{path}.step", f"must be > 0, got {step}", value=step)
        if log:
            raise ConfigError(path, "'step' cannot be combined with 'log: true' (Optuna forbids it)", value=spec)
    return SearchDim(kind, low=low, high=high, log=log, step=step)


def _fmt(x: float | None) -> str:
    if x is None:
        return "?"
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) < 1e6):
        return str(int(x))
    return f"{x:g}" if not math.isnan(x) else "nan"
