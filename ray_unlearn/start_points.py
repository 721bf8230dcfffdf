"""Write `start:` values into a search_spaces/ YAML in place, keeping its comments and layout.

The benches that choose start points (bench/quality.py, bench/start_points.py) write their winners
with these, floats exactly as measured: so the point shipped is the point measured.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping


def format_value(value: Any, digits: int | None = None) -> str:
    """A YAML scalar; floats exactly (the shortest text that reads back to the same float), or to `digits`
    significant digits: a configuration a few units in its fourth digit away can train to another result."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if digits is None else f"{value:.{digits}g}".replace("e-0", "e-")
    return str(value)


def rounded(point: Mapping[str, Any], digits: int = 3) -> dict[str, Any]:
    """`point` with floats to `digits` significant digits (bench/start_points.py evaluates candidates so)."""
    return {k: float(format_value(v, digits)) if isinstance(v, float) else v for k, v in point.items()}


def write_start(path: Path, point: Mapping[str, Any], command: str) -> None:
    """Replace (or add) `start:` in each searched key's one-line entry, and name `command` in the header."""
    lines = path.read_text().splitlines(keepends=True)
    in_search = False
    for i, line in enumerate(lines):
        if re.match(r"^search:\s*$", line):
            in_search = True
            continue
        if in_search and re.match(r"^\S", line):
            in_search = False
        m = re.match(r"^(\s+)(\w+):(\s*)\{(.*)\}(\s*(#.*)?)$", line.rstrip("\n")) if in_search else None
        if m and m.group(2) in point:
            body = re.sub(r",\s*start:\s*[^,}]+", "", m.group(4))
            lines[i] = f"{m.group(1)}{m.group(2)}:{m.group(3)}{{{body}, start: {format_value(point[m.group(2)])}}}{m.group(5) or ''}\n"
    text = "".join(lines)
    note = f"# start: values from `{command}`"
    text = re.sub(r"^# start: values from `[^`]*`\n", "", text, flags=re.M)
    text = re.sub(r"^(experiment:)", note + r"\n\1", text, count=1, flags=re.M)
    path.write_text(text)
