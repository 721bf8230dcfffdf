"""A method as the registry knows it before its torch code is imported, declared once.

Config validation, `ray-unlearn methods` and the search space need a method's task, its
hyperparameter dataclass and its description; the `Method` class (torch) is imported only when
the method runs. Each built-in method is declared once, by `method(...)` on its `Params` dataclass
(methods/params.py, i2i/params.py): the task catalogs (`declared(task)`), the registry and the
`Method` class itself (`Method.__init_subclass__`) all read that one declaration.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from ..lazy import load


@dataclasses.dataclass(frozen=True)
class MethodEntry:
    name: str
    task: str
    Params: type  # the hyperparameter dataclass (a torch-free module: methods/params.py, i2i/params.py)
    target: str  # "module:Class" of the Method subclass
    summary: str
    paper: str
    uses_retain: bool = True
    quick: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # hyperparameters that make a test run cheap

    def load(self) -> type:
        """The `methods.base.Method` subclass (imports its module, and torch, now)."""
        return load(self.target)


DECLARED: dict[str, MethodEntry] = {}  # every built-in method, by name, as its Params module declares it


def method(name: str, *, task: str, target: str, summary: str, paper: str, uses_retain: bool = True,
           quick: Mapping[str, Any] | None = None) -> Callable[[type], type]:
    """Declare method `name` on its `Params` dataclass (stack several for methods that share one)."""

    def declare(params: type) -> type:
        if name in DECLARED:
            raise ValueError(f"method {name!r} is declared twice")
        DECLARED[name] = MethodEntry(name, task, params, target, summary, paper, uses_retain, dict(quick or {}))
        return params

    return declare


def declared(task: str) -> dict[str, MethodEntry]:
    """The methods declared for `task`, in declaration order (import its Params module first)."""
    return {name: entry for name, entry in DECLARED.items() if entry.task == task}
