"""Dependencies point down: no private name crosses a package, no cycle between packages.

A package is the first name under ``lightning_aca`` (``collective``, ``stacked``, ``economics``
…) or one Hydra plugin under ``hydra_plugins``. Every import counts, at module level or inside a
function, except those under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
_TOP = ("lightning_aca", "hydra_plugins")


class _Import(NamedTuple):
    file: str
    line: int
    module: str  # the module imported from, resolved to an absolute name
    name: str | None  # the name imported from it, if any
    type_checking: bool


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> list[_Import]:
    file = str(path.relative_to(ROOT))
    module = _module_name(path)
    package_of_file = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[_Import] = []

    def visit(node: ast.AST, type_checking: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_checking)
            return
        if isinstance(node, ast.Import):
            found.extend(_Import(file, node.lineno, a.name, None, type_checking) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                base = package_of_file.rsplit(".", node.level - 1)[0]
                source = f"{base}.{source}" if source else base
            found.extend(_Import(file, node.lineno, source, a.name, type_checking) for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, type_checking)

    visit(ast.parse(path.read_text(), filename=file), False)
    return [i for i in found if i.module.split(".")[0] in _TOP]


def _all_imports() -> list[_Import]:
    return [i for top in _TOP for path in sorted((ROOT / top).rglob("*.py")) for i in _imports(path)]


def _target(imp: _Import) -> str:
    """The module an import reaches: ``from a import b`` reaches ``a.b`` when that is a module."""
    if imp.name is not None:
        candidate = f"{imp.module}.{imp.name}"
        as_path = ROOT.joinpath(*candidate.split("."))
        if as_path.with_suffix(".py").is_file() or (as_path / "__init__.py").is_file():
            return candidate
    return imp.module


def _crosses(imp: _Import) -> bool:
    return _package(_module_name(ROOT / imp.file)) != _package(_target(imp))


def test_no_private_name_crosses_a_package():
    offenders = []
    for imp in _all_imports():
        reached = _target(imp)
        names = reached.split(".")[1:] + ([imp.name] if imp.name and reached == imp.module else [])
        if _crosses(imp) and any(_is_private(n) for n in names):
            offenders.append(f"{imp.file}:{imp.line} imports {reached}" + (f" {imp.name}" if imp.name else ""))
    assert not offenders, "private names imported across packages:\n" + "\n".join(offenders)


def test_entry_point_is_imported_by_no_engine_or_plugin():
    offenders = [
        f"{imp.file}:{imp.line}"
        for imp in _all_imports()
        if imp.file.startswith(("lightning_aca/stacked/", "hydra_plugins/"))
        and _target(imp).startswith("lightning_aca.cli")
    ]
    assert not offenders, "lightning_aca.cli is the entry point only; imported by:\n" + "\n".join(offenders)


def _package_graph() -> dict[str, dict[str, list[str]]]:
    """package -> package -> the imports that make the edge (the root's lazy exports left out)."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for imp in _all_imports():
        source, target = _package(_module_name(ROOT / imp.file)), _package(_target(imp))
        if imp.type_checking or source == "lightning_aca" or source == target:
            continue
        graph[source][target].append(f"{imp.file}:{imp.line}")
    return graph


def _cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Strongly connected components of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in graph.get(node, {}):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                component.append(member)
            component.append(node)
            if len(component) > 1:
                components.append(sorted(component))

    for node in list(graph):
        if node not in index:
            connect(node)
    return components


def test_packages_import_each_other_in_no_cycle():
    graph = _package_graph()
    lines = [
        f"{a} -> {b}: {', '.join(graph[a][b])}"
        for component in _cycles(graph)
        for a in component
        for b in component
        if b in graph.get(a, {})
    ]
    assert not lines, "packages in an import cycle:\n" + "\n".join(lines)


def test_the_check_sees_relative_function_level_and_private_imports(tmp_path, monkeypatch):
    package = tmp_path / "lightning_aca"
    (package / "one").mkdir(parents=True)
    (package / "two").mkdir()
    (package / "one" / "__init__.py").write_text("")
    (package / "one" / "_helpers.py").write_text("def _shared():\n    pass\n")
    (package / "two" / "__init__.py").write_text("")
    (package / "two" / "user.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from lightning_aca.one import _helpers\n"
        "def f():\n    from ..one._helpers import _shared\n"
    )
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    imports = _imports(package / "two" / "user.py")
    assert [(i.module, i.name, i.type_checking) for i in imports] == [
        ("lightning_aca.one", "_helpers", True),
        ("lightning_aca.one._helpers", "_shared", False),
    ]
    assert all(_crosses(i) for i in imports)
    assert _target(imports[0]) == "lightning_aca.one._helpers"
