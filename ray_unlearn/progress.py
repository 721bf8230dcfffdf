"""Terminal output: an epoch progress bar and aligned tables. No dependencies."""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Mapping, Sequence, TextIO


class EpochBar:
    """`original  [##########..........]  30/60  loss 0.1234  4.1s`, redrawn in place on a TTY."""

    def __init__(self, stream: TextIO | None = None, width: int = 24):
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self.started: dict[str, float] = {}
        self._last_line_name: str | None = None

    def __call__(self, name: str, epoch: int, epochs: int, logs: Mapping[str, Any]) -> None:
        start = self.started.setdefault(name, time.perf_counter())
        filled = int(self.width * epoch / max(epochs, 1))
        bar = "#" * filled + "." * (self.width - filled)
        extras = "  ".join(f"{k} {_fmt(v)}" for k, v in logs.items())
        line = f"{name:<9} [{bar}] {epoch:>4}/{epochs:<4} {extras}  {time.perf_counter() - start:.1f}s"
        done = epoch >= epochs
        if self.tty:
            self.stream.write("\r" + line + ("\n" if done else ""))
        elif done or epoch == 1 or epoch % max(1, epochs // 5) == 0:
            self.stream.write(line + "\n")
        self.stream.flush()


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], headers: Sequence[str] | None = None) -> str:
    """A plain aligned text table."""
    headers = list(headers or columns)
    cells = [[_fmt(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append("  ".join(v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(r, widths)))
    return "\n".join(lines)


def markdown_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        out.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(out)


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        if v != v:
            return "nan"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3g}"
        return f"{v:.4g}" if abs(v) < 1 else f"{v:.2f}"
    return str(v)


def _numeric(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False
