"""The house plan of docs/architecture.md, checked on the source: imports point one way
(function-local imports count, imports under TYPE_CHECKING do not), one module writes
the process environment, and no module grows past 400 lines (one job each)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import PROJECT

PACKAGE = PROJECT / "logistic_regression"
ENVIRONMENT_WRITER = "logistic_regression.environment"
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PROJECT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def type_checking_nodes(tree: ast.AST) -> set[int]:
    """The ids of every node under an `if TYPE_CHECKING:` block."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for child in node.body for inner in ast.walk(child))
    return skipped


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that `name` imports, anywhere in it (a package's __init__
    run by importing one of its modules is not counted: it imports nothing of ours)."""
    tree = ast.parse(path.read_text())
    skipped = type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    return {target for target in targets if target in known and target != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_two_modules_import_each_other_even_inside_a_function():
    known = modules()
    graph = {name: imported(name, path, set(known)) for name, path in known.items()}
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle_through_a_function_local_import(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from pkg import b\n")
    b.write_text("def f():\n    from pkg.a import x\n")
    graph = {"pkg.a": imported("pkg.a", a, {"pkg.a", "pkg.b"})}
    graph["pkg.b"] = imported("pkg.b", b, {"pkg.a", "pkg.b"})
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


def writes_environment(path: Path) -> list[int]:
    """Lines that change os.environ: item assignment or deletion, update, pop,
    setdefault, clear, putenv/unsetenv."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        target = None
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            target = next((t for t in targets if isinstance(t, ast.Subscript)), None)
            if target is not None and ast.unparse(target.value) == "os.environ":
                lines.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            called = ast.unparse(node.func)
            if called in ("os.putenv", "os.unsetenv") or (
                ast.unparse(node.func.value) == "os.environ"
                and node.func.attr in ("update", "pop", "setdefault", "clear", "popitem")
            ):
                lines.append(node.lineno)
    return lines


def test_one_module_writes_the_environment():
    writers = {
        name: lines for name, path in modules().items() if (lines := writes_environment(path))
    }
    assert set(writers) <= {ENVIRONMENT_WRITER}, writers


def test_the_writer_check_finds_each_kind_of_write(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "import os\n"
        "os.environ['A'] = '1'\n"
        "os.environ.update(B='2')\n"
        "os.environ.pop('A', None)\n"
        "del os.environ['B']\n"
        "os.environ.setdefault('C', '3')\n"
        "os.environ.get('D')\n"
    )
    assert sorted(writes_environment(source)) == [2, 3, 4, 5, 6]


def test_no_module_is_over_the_size_limit():
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
