"""Every classification method by name, without importing torch: each is declared once, on its
`Params` dataclass in params.py (`entry.method`); its `Method` class is imported when it runs.

Adding a method: its `Params` with its declaration in params.py, its module (a `Method` subclass that
names itself), one YAML in search_spaces/; tests/test_contract.py then covers it.
"""

from __future__ import annotations

from .entry import MethodEntry, declared
from .params import SGDParams  # noqa: F401 - importing params.py runs its declarations

CATALOG: dict[str, MethodEntry] = declared("classification")
