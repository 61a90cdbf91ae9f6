"""No import cycle among fer/ modules, imports inside functions included.

A cycle means two modules each need the other (checkpoint -> export.ensemble ->
checkpoint, say): neither can be read, tested or moved alone. fer's layers go one
way: labels/spec -> data -> models -> evaluation -> training -> export -> loading,
launch_modes, gallery, cli.
"""

from __future__ import annotations

import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def module_names(root: str) -> dict[str, str]:
    """{dotted module name: path} of every .py file under root/fer."""
    found = {}
    for directory, _, files in os.walk(os.path.join(root, "fer")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                module = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                found[module.removesuffix(".__init__")] = path
    return found


def import_graph(root: str) -> dict[str, set[str]]:
    """{module: the fer modules it imports}, at any depth of its code."""
    modules = module_names(root)
    graph = {}
    for module, path in modules.items():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # Relative: from the package, `level - 1` levels up.
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                # `from fer.x import y` imports module fer.x.y when there is one.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            else:
                continue
            edges.update(t for t in targets if t in modules and t != module)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_a_cycle_through_a_function_level_import(tmp_path):
    package = tmp_path / "fer"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from fer.sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from fer import c\n")
    (package / "c.py").write_text("from . import a\n")
    (package / "d.py").write_text("import fer.a\n")  # Imports into the cycle: not in it.
    assert cycles(import_graph(str(tmp_path))) == [["fer.a", "fer.c", "fer.sub.b"]]


def test_fer_has_no_import_cycle():
    found = cycles(import_graph(REPO))
    assert not found, "import cycles among fer/ modules:\n" + "\n".join(
        " <-> ".join(c) for c in found)
