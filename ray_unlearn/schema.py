"""Typed dataclasses from untyped mappings, with errors that name the key.

One mechanism for every YAML section and every method's hyperparameters:
a frozen dataclass declares its fields with `option(...)` (default, bounds,
allowed choices, help), and `from_mapping` builds an instance from a dict,
coercing what YAML hands over (`"1e-5"` is a string to YAML) and raising
`ConfigError` with the key path, the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Mapping

from .errors import ConfigError

_MISSING = dataclasses.MISSING


def option(
    default: Any = _MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple | None = None,
    help: str = "",
    **extra: Any,
) -> Any:
    """A dataclass field with validation metadata.

    `ge/gt/le/lt` bound numbers, `choices` lists allowed values; `extra`
    carries whatever a caller layers on top (hyperparameters add search ranges).
    Mutable defaults (lists, dicts) become default factories.
    """
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices, "help": help, **extra}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def unknown_key_error(key: str, allowed: list[str], path: str) -> ConfigError:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(_join(path, key), f"unknown key{hint}; allowed: {', '.join(sorted(allowed))}", value=key)


def from_mapping(cls: type, raw: Any, path: str = "") -> Any:
    """Build dataclass `cls` from `raw`, validating every field."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(path, f"expected a mapping of {', '.join(field_names(cls))}, got {_show(raw)}", value=raw)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            raise unknown_key_error(str(key), list(fields), path)
    values = {}
    for name, f in fields.items():
        key_path = _join(path, name)
        if name in raw:
            values[name] = coerce(raw[name], hints[name], key_path, f.metadata)
        elif f.default is _MISSING and f.default_factory is _MISSING:
            raise ConfigError(key_path, "is required", value=None)
    return cls(**values)


def to_mapping(obj: Any) -> Any:
    """Plain dicts/lists/scalars from (nested) dataclasses, for YAML and hashing."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_mapping(v) for k, v in obj.items()}
    return obj


def coerce(value: Any, type_: Any, path: str, meta: Mapping[str, Any] | None = None) -> Any:
    """Coerce `value` to `type_` or raise a ConfigError naming `path`."""
    meta = meta or {}
    origin = typing.get_origin(type_)
    args = typing.get_args(type_)

    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        errors = []
        for arg in non_none:
            try:
                return coerce(value, arg, path, meta)
            except ConfigError as err:
                errors.append(err)
        raise errors[0]
    if value is None:
        raise ConfigError(path, f"must be {_type_name(type_)}, got null", value=None)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(path, f"{value!r} is not allowed; choose one of {', '.join(map(repr, args))}", value=value)
        return value
    if dataclasses.is_dataclass(type_):
        return from_mapping(type_, value, path)
    if origin in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            value = [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else value
        if not isinstance(value, (list, tuple)):
            raise ConfigError(path, f"must be a list, got {_show(value)}", value=value)
        item_type = args[0] if args else Any
        return tuple(coerce(v, item_type, f"{path}[{i}]", meta) for i, v in enumerate(value))
    if origin is dict or type_ is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(path, f"must be a mapping, got {_show(value)}", value=value)
        return dict(value)
    if type_ is Any:
        return value
    if type_ is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"must be true or false, got {_show(value)}", value=value)
        return value
    if type_ is int:
        out = _as_int(value, path)
    elif type_ is float:
        out = _as_float(value, path)
    elif type_ is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"must be a string, got {_show(value)}", value=value)
        out = value
    else:  # pragma: no cover - a field type this module was not taught
        raise TypeError(f"unsupported field type {type_!r} at {path}")
    _check_bounds(out, path, meta)
    return out


def _as_float(value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(path, f"must be a number, got {_show(value)}", value=value)
    if isinstance(value, (int, float)):
        out = float(value)
    elif isinstance(value, str):
        try:  # YAML 1.1 reads 1e-5 (no dot) as a string
            out = float(value.strip())
        except ValueError:
            raise ConfigError(path, f"must be a number, got {_show(value)}", value=value) from None
    else:
        raise ConfigError(path, f"must be a number, got {_show(value)}", value=value)
    if not math.isfinite(out):
        raise ConfigError(path, f"must be a finite number, got {value!r}", value=value)
    return out


def _as_int(value: Any, path: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(path, f"must be an integer, got {_show(value)}", value=value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            as_float = float(value.strip())
        except ValueError:
            as_float = math.nan
        if as_float.is_integer():
            return int(as_float)
    raise ConfigError(path, f"must be an integer, got {_show(value)}", value=value)


def _check_bounds(value: Any, path: str, meta: Mapping[str, Any]) -> None:
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(path, f"{value!r} is not allowed{hint}; choose one of {', '.join(map(str, choices))}", value=value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if meta.get("ge") is not None and value < meta["ge"]:
            raise ConfigError(path, f"{value} is out of range; must be >= {meta['ge']}", value=value)
        if meta.get("gt") is not None and value <= meta["gt"]:
            raise ConfigError(path, f"{value} is out of range; must be > {meta['gt']}", value=value)
        if meta.get("le") is not None and value > meta["le"]:
            raise ConfigError(path, f"{value} is out of range; must be <= {meta['le']}", value=value)
        if meta.get("lt") is not None and value >= meta["lt"]:
            raise ConfigError(path, f"{value} is out of range; must be < {meta['lt']}", value=value)


def describe_bounds(meta: Mapping[str, Any]) -> str:
    """Human text for a field's valid domain, e.g. '> 0, <= 1'."""
    parts = []
    for key, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if meta.get(key) is not None:
            parts.append(f"{sym} {meta[key]}")
    if meta.get("choices") is not None:
        parts.append("one of " + ", ".join(map(str, meta["choices"])))
    return ", ".join(parts)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(type_: Any) -> str:
    return getattr(type_, "__name__", str(type_))


def _show(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    kind = type(value).__name__
    return f"{text} ({kind})"


def unknown_name(key: str, value: str, allowed: list[str], what: str) -> ConfigError:
    close = difflib.get_close_matches(str(value), allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(key, f"unknown {what} {value!r}{hint}; allowed: {', '.join(sorted(allowed))}", value=value)
