"""The package's import graph in numbers: modules, import edges, circles, floors, modules over 400 lines.

The graph is the one tests/test_layering.py checks (`ray_unlearn.module_graph`). Give a checkout's
root to compare two versions:

    python bench/module_graph.py                 # this checkout
    git worktree add /tmp/old <rev> && python bench/module_graph.py /tmp/old
"""

import sys
from pathlib import Path

from ray_unlearn.module_graph import cycles, floors, import_graph

root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
package = root / "ray_unlearn"
graph = import_graph(package)
lines = {p: len(p.read_text().splitlines()) for p in package.rglob("*.py")}
big = sorted(((n, str(p.relative_to(root))) for p, n in lines.items() if n > 400), reverse=True)
print(f"modules {len(graph)}, import edges {sum(len(v) for v in graph.values())}, circles {len(cycles(graph))} "
      f"{cycles(graph)}, floors {floors(graph)}, modules over 400 lines: {big}")
