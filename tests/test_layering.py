"""Imports go one way (see docs/design.md): a module may import only from its own or lower layers."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "edgeprune"

DESIGN = ROOT.parent / "docs" / "design.md"


def documented_layers() -> list[list[str]]:
    """The layer list of docs/design.md (between its `<!-- layers` markers), bottom first."""
    text = DESIGN.read_text()
    block = text[text.index("<!-- layers"):text.index("<!-- /layers -->")].splitlines()[1:]
    layers = []
    for line in block:
        _, _, names = line.partition(". ")
        layers.append([n.strip().replace("\\_", "_") for n in names.split(",") if n.strip()])
    return layers


LAYERS = documented_layers()


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


def _imports() -> dict[str, set[str]]:
    """Top-level part of the package (`graph`, `rules`, `api`, ...) -> the top-level parts it imports."""
    out: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        me = rel.parts[0] if rel.parts[0] != "__init__" else "__init__"
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edgeprune."):
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("edgeprune.")]
            for n in names:
                other = n.split(".")[1]
                if other != me:
                    out.setdefault(me, set()).add(other)
    return out


def test_no_two_packages_import_each_other():
    deps = _imports()
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(n: str, path: list[str]) -> bool:
        state[n] = 1
        for m in sorted(deps.get(n, ())):
            if state.get(m) == 1:
                cycle.extend(path[path.index(m):] + [m] if m in path else [n, m])
                return True
            if state.get(m) is None and visit(m, path + [m]):
                return True
        state[n] = 2
        return False

    for n in sorted(deps):
        if state.get(n) is None and visit(n, [n]):
            break
    assert not cycle, " -> ".join(cycle)


def test_every_documented_module_exists():
    for layer in LAYERS:
        for name in layer:
            if name == "__init__":
                continue
            path = ROOT.joinpath(*name.split("."))
            assert path.with_suffix(".py").exists() or path.is_dir(), f"docs/design.md names {name}, which is gone"
