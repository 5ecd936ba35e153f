"""Imports go one way (see docs/design.md): a module may import only from its own or lower layers."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "edgeprune"

LAYERS = [
    ["errors", "graph.graph", "safe_json", "outputs", "weights_io"],
    ["rules"],
    ["graph.trace", "graph.coupling", "graph"],
    ["surgery", "verify", "export", "testing", "recovery", "sparse", "deploy"],
    ["criteria", "selection", "metrics"],
    ["pruning"],
    ["api", "report_table", "report", "data", "zoo", "training", "devices"],
    ["store", "workflow", "methods", "sparsify", "search", "fit", "federated"],
    ["__init__"],
    ["cli", "sweep", "bench_engine", "benchmarks"],
]


def _layer(module: str) -> int:
    best = None
    for i, names in enumerate(LAYERS):
        for n in names:
            if module == n or module.startswith(n + "."):
                if best is None or len(n) > best[1]:
                    best = (i, len(n))
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[0]


def test_imports_go_one_way():
    bad = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"] or ["__init__"]
        me = ".".join(parts)
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edgeprune"):
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("edgeprune")]
            for t in targets:
                other = t[len("edgeprune."):] if t != "edgeprune" else "__init__"
                if _layer(other) > _layer(me):
                    bad.append(f"{me} imports {other}")
    assert not bad, bad
