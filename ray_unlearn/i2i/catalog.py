"""Every i2i method by name, without importing torch: each is declared once, on its `Params` dataclass
in params.py (`methods.entry.method`); its `Method` class is imported when it runs."""

from __future__ import annotations

from ..methods.entry import MethodEntry, declared
from .params import I2IKRParams  # noqa: F401 - importing params.py runs its declarations

CATALOG: dict[str, MethodEntry] = declared("i2i")
