"""A method as the registry knows it before its torch code is imported.

Config validation, `ray-unlearn methods` and the search space need a method's task, its
hyperparameter dataclass and its description; the `Method` class (torch) is imported only when
the method runs. tests/methods/test_contract.py checks every entry against its class.
"""

from __future__ import annotations

import dataclasses

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

    def load(self) -> type:
        """The `methods.base.Method` subclass (imports its module, and torch, now)."""
        return load(self.target)
