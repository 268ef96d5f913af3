"""Find import cycles and over-long modules in a package, without importing it.

Run from the repository root::

    python -m tools.check_imports                  # checks netproto_twisted/
    python -m tools.check_imports path/to/package --max-lines 700

Every ``.py`` file under the package is parsed with :mod:`ast`; nothing is
imported or executed.  The tool builds the graph of imports between the
package's own modules and reports:

- every import cycle: each strongly connected component of more than one
  module (or a module importing itself), printed with one cycle through it and
  the line of each import on that cycle;
- every module longer than ``--max-lines`` lines (700 by default).

It exits with status 1 if it found either, 0 otherwise.

What counts as an import (the rules, decided once here):

- Every ``import`` and ``from ... import`` statement in the module counts,
  wherever it stands: at module level, inside ``try``/``if``, and inside
  functions and methods.  A function-local import is still a dependency; it is
  how a cycle usually hides, since it only postpones the import to the first
  call.
- Imports in the body of ``if TYPE_CHECKING:`` (or ``if typing.TYPE_CHECKING:``)
  are ignored: they never run (DESIGN.md allows a type-only import back).
  Their ``else:`` branch counts.  ``--type-checking`` counts them too, for a
  stricter look at the layering.
- ``import a.b.c`` and ``from a.b import c`` depend on the module they name:
  ``a.b.c`` if it is a module of the package, otherwise the package ``a.b``
  (its ``__init__``).
- Importing ``a.b.c`` also runs the faces of its packages ``a`` and ``a.b``
  first.  That is an edge too, except to the importing module's own
  packages: those are already imported (or being imported) whenever the
  module runs, so the import is a no-op.  So ``smtp/relay/queue.py`` may
  import ``smtp.errors`` although ``smtp/__init__.py`` re-exports the relay,
  but a module outside ``smtp.relay`` that imports ``smtp.relay.queue`` also
  depends on ``smtp/relay/__init__.py`` and everything that face imports.
- Relative imports are resolved against the importing module's package.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MAX_LINES = 700
"""Modules longer than this many lines are reported."""


@dataclass(frozen=True)
class Edge:
    """One import of a package module by another."""

    source: str
    target: str
    line: int


@dataclass
class Report:
    """What :func:`check` found in one package."""

    modules: dict[str, Path] = field(default_factory=dict)
    edges: dict[str, dict[str, Edge]] = field(default_factory=dict)
    cycles: list[list[Edge]] = field(default_factory=list)
    long_modules: list[tuple[str, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when there is no cycle and no over-long module."""
        return not self.cycles and not self.long_modules


def module_names(root: Path) -> dict[str, Path]:
    """Map every module of the package at *root* to its file.

    A package's ``__init__.py`` is named after the package itself.
    """
    base = root.parent
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        # Skip files in directories that are not packages (no __init__.py).
        if any(not (base.joinpath(*parts[:i]) / "__init__.py").exists()
               for i in range(1, len(parts) if path.name != "__init__.py" else len(parts) + 1)):
            continue
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    """Whether an ``if`` test is ``TYPE_CHECKING`` or ``typing.TYPE_CHECKING``."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    if isinstance(test, ast.Attribute):
        return test.attr == "TYPE_CHECKING"
    return False


def _import_nodes(
    tree: ast.AST, type_checking: bool = False
) -> Iterator[ast.Import | ast.ImportFrom]:
    """Yield every import statement that can run.

    ``if TYPE_CHECKING:`` bodies are skipped unless *type_checking* is true.
    """
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if not type_checking and isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _resolve(
    module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]
) -> Iterator[str]:
    """Yield the package modules that one import statement depends on."""

    def closest(name: str) -> str | None:
        # The module itself, or the nearest enclosing package we know.
        while name:
            if name in known:
                return name
            name = name.rpartition(".")[0]
        return None

    if isinstance(node, ast.Import):
        for alias in node.names:
            target = closest(alias.name)
            if target is not None:
                yield target
        return
    if node.level:
        package = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        if alias.name != "*" and submodule in known:
            yield submodule
        else:
            target = closest(base)
            if target is not None:
                yield target


def _faces_run_first(importer: str, target: str, known: set[str]) -> Iterator[str]:
    """The packages whose ``__init__`` importing *target* runs, beyond *importer*'s own."""
    parts = target.split(".")
    for end in range(1, len(parts)):
        package = ".".join(parts[:end])
        if package in known and importer != package and not importer.startswith(package + "."):
            yield package


def import_graph(
    modules: dict[str, Path], type_checking: bool = False
) -> dict[str, dict[str, Edge]]:
    """Return, for each module, the package modules it imports (first import line kept).

    With *type_checking*, imports under ``if TYPE_CHECKING:`` count too.
    """
    known = set(modules)
    graph: dict[str, dict[str, Edge]] = {name: {} for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        nodes = sorted(_import_nodes(tree, type_checking), key=lambda n: n.lineno)
        for node in nodes:
            for target in _resolve(name, is_package, node, known):
                for dependency in (*_faces_run_first(name, target, known), target):
                    graph[name].setdefault(dependency, Edge(name, dependency, node.lineno))
    return graph


def strongly_connected(graph: dict[str, dict[str, Edge]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return sorted(components)


def shortest_cycle(graph: dict[str, dict[str, Edge]], members: Sequence[str]) -> list[Edge]:
    """One shortest cycle through the first member of a component, as a list of edges."""
    inside = set(members)
    start = members[0]
    if start in graph[start]:
        return [graph[start][start]]
    came_from: dict[str, Edge] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in sorted(graph[node]):
            if target not in inside:
                continue
            edge = graph[node][target]
            if target == start:
                path = [edge]
                while node != start:
                    path.append(came_from[node])
                    node = came_from[node].source
                return list(reversed(path))
            if target not in came_from:
                came_from[target] = edge
                queue.append(target)
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover


def count_lines(path: Path) -> int:
    """Number of lines in a file."""
    return len(path.read_text(encoding="utf-8").splitlines())


def check(
    root: Path, max_lines: int = DEFAULT_MAX_LINES, type_checking: bool = False
) -> Report:
    """Check the package at *root* for import cycles and modules over *max_lines*.

    With *type_checking*, type-only imports count as edges too (a stricter layering check).
    """
    report = Report(modules=module_names(root))
    report.edges = import_graph(report.modules, type_checking)
    for members in strongly_connected(report.edges):
        if len(members) > 1 or members[0] in report.edges[members[0]]:
            report.cycles.append(shortest_cycle(report.edges, members))
    for name, path in sorted(report.modules.items()):
        lines = count_lines(path)
        if lines > max_lines:
            report.long_modules.append((name, lines))
    return report


def format_report(report: Report, root: Path, max_lines: int) -> Iterable[str]:
    """The lines printed for a report."""
    base = root.parent
    for cycle in report.cycles:
        names = [edge.source for edge in cycle] + [cycle[0].source]
        yield "import cycle: " + " -> ".join(names)
        for edge in cycle:
            where = report.modules[edge.source].relative_to(base)
            yield f"    {where}:{edge.line}: imports {edge.target}"
    for name, lines in report.long_modules:
        where = report.modules[name].relative_to(base)
        yield f"long module: {where} has {lines} lines (limit {max_lines})"
    yield (
        f"{len(report.modules)} modules: {len(report.cycles)} import cycle(s), "
        f"{len(report.long_modules)} module(s) over {max_lines} lines"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.check_imports", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("package", nargs="?", default="netproto_twisted", type=Path,
                        help="directory of the package to check (default: netproto_twisted)")
    parser.add_argument("--max-lines", type=int, default=DEFAULT_MAX_LINES,
                        help=f"longest module allowed, in lines (default: {DEFAULT_MAX_LINES})")
    parser.add_argument("--type-checking", action="store_true",
                        help="count imports under `if TYPE_CHECKING:` too (stricter layering)")
    args = parser.parse_args(argv)
    root: Path = args.package
    if not (root / "__init__.py").is_file():
        parser.error(f"{root} is not a package directory")
    report = check(root, args.max_lines, args.type_checking)
    for line in format_report(report, root, args.max_lines):
        sys.stdout.write(line + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
