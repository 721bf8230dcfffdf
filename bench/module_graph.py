"""The package's import graph in numbers: modules, import edges, circles, floors, modules over 400 lines.

The graph is the one tests/test_layering.py checks (every `import` and `from ... import`, resolved to
ray_unlearn modules); circles are strongly connected components of more than one module, floors the
longest chain of imports between components. Give a checkout's root to compare two versions:

    python bench/module_graph.py                 # this checkout
    git worktree add /tmp/old <rev> && python bench/module_graph.py /tmp/old
"""

import ast
import sys
from pathlib import Path

sys.setrecursionlimit(10000)
PACKAGE = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]) / "ray_unlearn"

def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
graph = {}
for name, path in paths.items():
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        for t in targets:
            while t and t not in paths:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    graph[name] = found
# SCCs
index, low, stack, on, sccs = {}, {}, [], set(), []
def visit(v):
    index[v] = low[v] = len(index); stack.append(v); on.add(v)
    for w in graph[v]:
        if w not in index: visit(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        sccs.append(comp)
for v in graph:
    if v not in index: visit(v)
comp_of = {m: i for i, c in enumerate(sccs) for m in c}
memo = {}
def depth(i):
    if i in memo: return memo[i]
    memo[i] = 0
    memo[i] = 1 + max((depth(comp_of[w]) for m in sccs[i] for w in graph[m] if comp_of[w] != i), default=0)
    return memo[i]
floors = max(depth(i) for i in range(len(sccs)))
lines = {n: len(p.read_text().splitlines()) for n, p in paths.items()}
big = sorted(((l, n) for n, l in lines.items() if l > 400), reverse=True)
print(f"modules {len(graph)}, import edges {sum(len(v) for v in graph.values())}, circles {sum(len(c) > 1 for c in sccs)} "
      f"({[sorted(c) for c in sccs if len(c) > 1]}), floors {floors}, modules over 400 lines: {big}")
