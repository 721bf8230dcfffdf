"""YAML in and out: reading a file safely (no aliases, bounded depth, one precise error per problem),
`--set key.path=value` overrides, and the YAML a run logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from ..errors import ConfigError
from ..schema import to_mapping
from .sections import _TOP_KEYS


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


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def dump_yaml(data: Mapping[str, Any]) -> str:
    return yaml.safe_dump(to_mapping(data), sort_keys=False, default_flow_style=None)
