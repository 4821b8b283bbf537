"""Which package of ``gateway`` imports which: the layering the README's layout section declares, measured.

Reads the sources with :mod:`ast` only (nothing is imported or run), so it works on a tree that does not
import. A *package* is a first-level name under ``gateway``: a sub-package (``gateway/store``) or a top-level
module (``gateway/cli.py``). Each import is one of three kinds:

- ``module``: at module level, run when the importing module is imported;
- ``function``: inside a function or method body, run when that code runs (a link the module level hides);
- ``typing``: under ``if TYPE_CHECKING:``, never run (annotations only).

Also printed: the cycles between packages (strongly connected components of the module and function edges,
found without recursion), and the files over 500 lines and the functions over 60 lines.

Usage: ``python tools/depgraph.py [--root gateway] [--json] [--edges-only]``.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

#: Sub-packages counted as packages of their own: the store's migrations are run by Alembic (never imported by
#: the store's modules) and may use any code of the tree to fill a new table.
SPLIT = frozenset({"store.migrations"})

#: Sizes the style guide calls long: a file over this many lines, a function over that many.
FILE_LINES = 500
FUNCTION_LINES = 60

KINDS = ("module", "function", "typing")


@dataclass(frozen=True)
class Import:
    """One import statement of one file, resolved to the package it reaches."""

    source: str  # importing package
    target: str  # imported package
    kind: str  # one of KINDS
    path: str  # importing file, relative to the root's parent
    line: int
    module: str  # the dotted module the statement names


@dataclass
class Graph:
    """The imports of a tree and the sizes of its files and functions."""

    root: str
    imports: list[Import] = field(default_factory=list)
    long_files: list[tuple[str, int]] = field(default_factory=list)
    long_functions: list[tuple[str, str, int]] = field(default_factory=list)

    def edges(self, kinds: tuple[str, ...] = ("module", "function")) -> dict[tuple[str, str], dict[str, int]]:
        """``(source, target) -> {kind: count}`` between distinct packages, for the given kinds."""
        found: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(KINDS, 0))
        for imp in self.imports:
            if imp.kind in kinds and imp.source != imp.target:
                found[(imp.source, imp.target)][imp.kind] += 1
        return dict(found)

    def packages(self) -> set[str]:
        return {imp.source for imp in self.imports} | {imp.target for imp in self.imports}

    def cycles(self, kinds: tuple[str, ...] = ("module", "function")) -> list[list[str]]:
        """Groups of packages that reach each other (strongly connected components of two or more)."""
        return strongly_connected(self.packages(), set(self.edges(kinds)))

    def where(self, source: str, target: str) -> list[Import]:
        """The statements behind one edge, to find what to move."""
        return [imp for imp in self.imports if imp.source == source and imp.target == target]


def package_of(module: str, root: str) -> str | None:
    """``gateway.store.db`` -> ``store``; ``gateway`` alone and modules outside the root -> None (see SPLIT)."""
    parts = module.split(".")
    if parts[0] != root or len(parts) < 2:
        return None
    if len(parts) > 2 and f"{parts[1]}.{parts[2]}" in SPLIT:
        return f"{parts[1]}.{parts[2]}"
    return parts[1]


def _module_name(path: Path, base: Path) -> str:
    rel = path.relative_to(base).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved against the current module)."""
    if node.level == 0:
        return node.module or ""
    parts = current.split(".")
    if not is_package:
        parts = parts[:-1]
    if node.level > 1:
        parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, node.module] if node.module else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _targets(node: ast.Import | ast.ImportFrom, current: str, is_package: bool, root: str) -> list[str]:
    """The dotted modules one statement reaches (``from gateway import cli`` reaches ``gateway.cli``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = _resolve(node, current, is_package)
    if base == root:  # from gateway import config, logs
        return [f"{root}.{alias.name}" for alias in node.names]
    return [base]


def scan_file(path: Path, base: Path, root: str) -> tuple[list[Import], list[tuple[str, str, int]], int]:
    """The imports of one file, its long functions and its line count."""
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text, filename=str(path))
    current = _module_name(path, base)
    source = package_of(current, root) or "__init__"
    is_package = path.name == "__init__.py"
    rel = str(path.relative_to(base))
    imports: list[Import] = []
    long_functions: list[tuple[str, str, int]] = []
    # Iterative walk carrying the context (inside a function? under TYPE_CHECKING?) of each node.
    stack: list[tuple[ast.AST, bool, bool, str]] = [(tree, False, False, "")]
    while stack:
        node, in_function, typing_only, scope = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            kind = "typing" if typing_only else "function" if in_function else "module"
            for module in _targets(node, current, is_package, root):
                target = package_of(module, root)
                if target is not None:
                    imports.append(Import(source, target, kind, rel, node.lineno, module))
            continue
        children_function = in_function
        children_scope = scope
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            children_function = True
            children_scope = f"{scope}.{node.name}" if scope else node.name
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > FUNCTION_LINES:
                long_functions.append((rel, children_scope, length))
        elif isinstance(node, ast.ClassDef):
            children_scope = f"{scope}.{node.name}" if scope else node.name
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend((child, children_function, True, children_scope) for child in node.body)
            stack.extend((child, children_function, typing_only, children_scope) for child in node.orelse)
            continue
        stack.extend((child, children_function, typing_only, children_scope) for child in ast.iter_child_nodes(node))
    return imports, long_functions, len(text.splitlines())


def scan(root: Path) -> Graph:
    """Every ``.py`` file under ``root`` (a package folder such as ``gateway``)."""
    root = root.resolve()
    graph = Graph(root.name)
    for path in sorted(root.rglob("*.py")):
        imports, long_functions, lines = scan_file(path, root.parent, root.name)
        graph.imports.extend(imports)
        graph.long_functions.extend(long_functions)
        if lines > FILE_LINES:
            graph.long_files.append((str(path.relative_to(root.parent)), lines))
    graph.imports.sort(key=lambda i: (i.source, i.target, i.path, i.line))
    graph.long_files.sort(key=lambda f: -f[1])
    graph.long_functions.sort(key=lambda f: -f[2])
    return graph


def strongly_connected(nodes: set[str], edges: set[tuple[str, str]]) -> list[list[str]]:
    """Tarjan's components, iteratively (an explicit stack: no recursion depth to run out of)."""
    successors: dict[str, list[str]] = defaultdict(list)
    for a, b in sorted(edges):
        successors[a].append(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(nodes):
        if start in index:
            continue
        work: list[tuple[str, int]] = [(start, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = successors[node]
            if position < len(children):
                work.append((node, position + 1))
                child = children[position]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return sorted(found)


def report(graph: Graph) -> str:
    lines = [f"# Imports between the packages of {graph.root} (module / function / typing-only)"]
    edges = graph.edges(KINDS)
    by_source: dict[str, list[str]] = defaultdict(list)
    for (a, b), counts in sorted(edges.items()):
        by_source[a].append(f"{b} ({counts['module']}/{counts['function']}/{counts['typing']})")
    for source in sorted(by_source):
        lines.append(f"{source} -> {', '.join(by_source[source])}")
    cycles = graph.cycles()
    lines.append("")
    lines.append(f"# Cycles (module and function imports): {len(cycles)}")
    for cycle in cycles:
        lines.append(" <-> ".join(cycle))
        members = set(cycle)
        for a, b in sorted(graph.edges()):
            if a in members and b in members:
                sites = ", ".join(f"{i.path}:{i.line}" for i in graph.where(a, b) if i.kind != "typing")
                lines.append(f"    {a} -> {b}: {sites}")
    lines.append("")
    lines.append(f"# Files over {FILE_LINES} lines: {len(graph.long_files)}")
    lines.extend(f"{lines_:5d}  {path}" for path, lines_ in graph.long_files)
    lines.append("")
    lines.append(f"# Functions over {FUNCTION_LINES} lines: {len(graph.long_functions)}")
    lines.extend(f"{length:5d}  {path}:{name}" for path, name, length in graph.long_functions)
    return "\n".join(lines)


def as_json(graph: Graph) -> str:
    return json.dumps({
        "edges": [{"source": a, "target": b, **counts} for (a, b), counts in sorted(graph.edges(KINDS).items())],
        "cycles": graph.cycles(),
        "long_files": [{"path": p, "lines": n} for p, n in graph.long_files],
        "long_functions": [{"path": p, "function": f, "lines": n} for p, f, n in graph.long_functions],
    }, indent=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Package dependency graph of the gateway, from its sources.")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent / "gateway",
                        help="the package folder to read (default: this tree's gateway/)")
    parser.add_argument("--json", action="store_true", help="one JSON document instead of the text report")
    args = parser.parse_args(argv)
    graph = scan(args.root)
    print(as_json(graph) if args.json else report(graph))
    return 0


if __name__ == "__main__":
    sys.exit(main())
