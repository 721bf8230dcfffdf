"""Method hyperparameters: one declaration gives default, valid domain and search range.

```python
@dataclass(frozen=True)
class Params:
    lr: float = hp(0.01, gt=0, low=1e-3, high=1e-1, log=True, help="SGD learning rate")
    epochs: int = hp(10, ge=1, grid=(5, 10, 20), help="passes over the retain set")
```
`ge/gt/le/lt/choices` bound what a run accepts; `low/high/log` or `grid` is
the default search range (docs/methods.md tables) used by `search: {x: auto}` and
listed by `ray-unlearn methods`.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Mapping

from .errors import ConfigError
from .schema import coerce, describe_bounds, option, unknown_key_error
from .space import SearchDim, parse_dim


def hp(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    log: bool = False,
    grid: tuple | None = None,
    help: str = "",
    **bounds: Any,
) -> Any:
    """Declare one hyperparameter (see the module docstring)."""
    if (low is None) != (high is None):
        raise TypeError("hp(): give both low and high, or neither")
    return option(default, help=help, search_low=low, search_high=high, search_log=log, search_grid=grid, **bounds)


@dataclasses.dataclass(frozen=True)
class HyperParam:
    """What `ray-unlearn methods` shows for one hyperparameter."""

    name: str
    type: type
    default: Any
    valid: str
    search: SearchDim | None
    help: str


def describe(params_cls: type) -> list[HyperParam]:
    hints = typing.get_type_hints(params_cls)
    out = []
    for f in dataclasses.fields(params_cls):
        out.append(
            HyperParam(
                name=f.name,
                type=_base_type(hints[f.name]),
                default=f.default,
                valid=describe_bounds(f.metadata),
                search=_declared_dim(f, hints[f.name]),
                help=f.metadata.get("help", ""),
            )
        )
    return out


def default_space(params_cls: type) -> dict[str, SearchDim]:
    """The declared search range of every hyperparameter that has one."""
    return {p.name: p.search for p in describe(params_cls) if p.search is not None}


def make_params(params_cls: type, values: Mapping[str, Any], path: str = "fixed") -> Any:
    """Validated hyperparameter instance; unknown names and bad values raise ConfigError."""
    kwargs = {
        name: coerce(value, hint, f"{path}.{name}", f.metadata) for name, value, f, hint in _declared(params_cls, values, path)
    }
    try:
        return params_cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:  # a __post_init__ cross-field check
        raise ConfigError(path, str(err), value=dict(values)) from None


def parse_search(params_cls: type, search: Mapping[str, Any], path: str = "search") -> dict[str, SearchDim]:
    """Validate a `search:` mapping against the method's hyperparameters."""
    return {
        name: parse_dim(spec, f"{path}.{name}", _base_type(hint), f.metadata, _declared_dim(f, hint))
        for name, spec, f, hint in _declared(params_cls, search, path)
    }


def _declared(params_cls: type, values: Mapping[str, Any], path: str):
    """(name, value, field, type hint) per entry; a name the class does not declare raises ConfigError."""
    hints = typing.get_type_hints(params_cls)
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    for name, value in values.items():
        if name not in fields:
            raise unknown_key_error(str(name), list(fields), path)
        yield name, value, fields[name], hints[name]


def _declared_dim(f: dataclasses.Field, type_: Any) -> SearchDim | None:
    meta = f.metadata
    base = _base_type(type_)
    if meta.get("search_grid") is not None:
        return SearchDim("categorical", choices=tuple(meta["search_grid"]))
    if meta.get("search_low") is not None:
        kind = "int" if base is int else "float"
        return SearchDim(kind, low=meta["search_low"], high=meta["search_high"], log=bool(meta.get("search_log")))
    if base is bool:
        return SearchDim("categorical", choices=(False, True))
    if meta.get("choices") is not None:
        return SearchDim("categorical", choices=tuple(meta["choices"]))
    return None


def _base_type(type_: Any) -> type:
    args = [a for a in typing.get_args(type_) if a is not type(None)]
    if typing.get_origin(type_) is typing.Literal:
        return type(args[0])
    if args and typing.get_origin(type_) in (typing.Union, __import__("types").UnionType):
        return _base_type(args[0])
    return type_
