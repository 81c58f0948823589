"""The architecture, computed from the code's imports, so that it stays what the README says it is.

Packages of the house: the folders under facmon/ (facmon.kernel, facmon.estate, ...) and the top-level folders api,
rules, gateway, collectors, simulators. facmon/__init__.py and facmon/__main__.py are the shell's side and are
left out of the package graph (the one starts the CLI, the other only patches aiomqtt from the kernel).

What counts as an import:
- every `import` and `from ... import`, at module level or inside a function (a deferred import still ties the
  two modules together at run time);
- an import under `if TYPE_CHECKING:` never runs, so it cannot make a run-time cycle: it is left out of the
  file-level cycle check. It is still a dependency of the package (its types name the other package), so it counts
  in the package graph: its cycles, the kernel's isolation, the ban on importing facmon.shell and the layering.

An import names the most specific module of the house it reaches (`from a.b import c` is a.b.c when that is a
module, else a.b); the parents' `__init__` modules that Python runs on the way are not counted as edges.

Size limits for every module of the house: at most 400 lines, functions at most 60 lines (def line to last line,
nested functions counted on their own too), constructors (`__init__`) at most 10 parameters besides self. No
`# noqa: E402` (imports below code) in package code.

Run `python -m tests.test_architecture` to print the package graph.
"""

from __future__ import annotations

import ast
import functools
import re
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL = ("facmon", "api", "rules", "gateway", "collectors", "simulators")

# Lowest first, as the code stands: a package may import packages of lower layers only, never one of its own layer
# nor one above (so within a layer the packages do not know each other).
LAYERS: list[set[str]] = [
    {"facmon.kernel"},  # model, clock, metrics, topics, data files, db base, influx, daemons
    {"collectors", "facmon.historian"},  # device drivers and pollers; readings into InfluxDB
    {"facmon.estate"},  # the site file, assets, rotas, windows, on-call (names the drivers of its devices)
    {"facmon.workorders", "gateway", "simulators"},  # work orders; the site's MQTT gateway; simulated devices
    {"rules"},  # the engine that turns events into work orders
    {"facmon.notifier", "facmon.reports"},  # who is told about work orders and alarms; KPIs and reports
    {"api"},
    {"facmon.demo_history"},  # a year of made-up history, through every part above
    {"facmon.shell"},  # CLI, `facmon up`, settings, composition root, migrations
]
PACKAGES = frozenset().union(*LAYERS)
# Modules of the facmon package itself that belong to no package of the graph.
OUTSIDE = {"facmon", "facmon.__main__"}
KERNEL = "facmon.kernel"
SHELL = "facmon.shell"

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_CTOR_PARAMS = 10


@dataclass(frozen=True)
class Import:
    source: str  # module doing the import
    target: str  # module of the house it reaches
    line: int
    deferred: bool  # inside a function
    type_only: bool  # under `if TYPE_CHECKING:`

    def where(self, modules: Mapping[str, Path]) -> str:
        kind = " (TYPE_CHECKING)" if self.type_only else " (in a function)" if self.deferred else ""
        return f"{modules[self.source].relative_to(ROOT)}:{self.line}: {self.source} -> {self.target}{kind}"


@functools.cache
def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top in TOP_LEVEL:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def package_of(module: str) -> str | None:
    if module in OUTSIDE:
        return None
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "facmon" else parts[0]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, known: Mapping[str, Path]) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.known = known
        self.depth = 0
        self.type_only = 0
        self.found: list[Import] = []

    def _resolve(self, name: str) -> str | None:
        while name and name not in self.known:
            name = name.rpartition(".")[0]
        return name or None

    def _add(self, target: str | None, line: int) -> None:
        if target and target != self.module:
            self.found.append(Import(self.module, target, line, self.depth > 0, self.type_only > 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(self._resolve(alias.name), node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            parts = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            base = ".".join([*parts, *([node.module] if node.module else [])])
        for alias in node.names:
            full = f"{base}.{alias.name}"
            self._add(full if full in self.known else self._resolve(base), node.lineno)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self.visit(node.test)
        self.type_only += 1
        for child in node.body:
            self.visit(child)
        self.type_only -= 1
        for child in node.orelse:
            self.visit(child)


@functools.cache
def trees() -> dict[str, ast.Module]:
    return {name: ast.parse(path.read_text(), filename=str(path)) for name, path in modules().items()}


@functools.cache
def imports() -> tuple[Import, ...]:
    found: list[Import] = []
    for name, tree in trees().items():
        visitor = _Imports(name, modules()[name].name == "__init__.py", modules())
        visitor.visit(tree)
        found.extend(visitor.found)
    return tuple(dict.fromkeys(found))  # one per statement and target, though it names several of its members


def package_imports() -> dict[tuple[str, str], list[Import]]:
    """(importing package, imported package) -> the imports behind that edge, every kind counted."""
    edges: dict[tuple[str, str], list[Import]] = defaultdict(list)
    for imp in imports():
        source, target = package_of(imp.source), package_of(imp.target)
        if source and target and source != target:
            edges[source, target].append(imp)
    return edges


def strongly_connected(nodes: Iterable[str], edges: Mapping[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the components of more than one node (the cycles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(edges.get(succ, ())))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
    return cycles


def _fail_if(found: object, title: str, lines: Iterable[str]) -> None:
    if found:
        pytest.fail(title + "\n  " + "\n  ".join(lines), pytrace=False)


# --- the packages ------------------------------------------------------------------------------------------------


def test_every_package_is_known() -> None:
    """A new folder under facmon/ (or a module beside them) must be placed in LAYERS before it is used."""
    unknown = sorted({p for name in modules() if (p := package_of(name)) and p not in PACKAGES})
    _fail_if(
        unknown, "packages this test does not know: add each to a layer in LAYERS (tests/test_architecture.py)", unknown
    )
    missing = sorted(p for p in PACKAGES if p not in modules())
    _fail_if(missing, "packages in LAYERS that no longer exist: remove them", missing)


def test_top_level_folders_match_the_distribution() -> None:
    """The folders this test reads are the ones pyproject.toml ships: a new top-level package must come here too."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shipped = {name.rstrip("*") for name in config["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert shipped == set(TOP_LEVEL), f"pyproject ships {sorted(shipped)}, this test reads {sorted(TOP_LEVEL)}"


def test_package_graph_has_no_cycle() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for source, target in package_imports():
        edges[source].add(target)
    cycles = strongly_connected(sorted(PACKAGES), edges)
    lines = []
    for cycle in cycles:
        lines.append("cycle: " + ", ".join(cycle))
        for (source, target), found in sorted(package_imports().items()):
            if source in cycle and target in cycle:
                lines.append(f"  {source} -> {target}: {len(found)} imports, among them")
                lines.extend("    " + imp.where(modules()) for imp in found[:3])
    _fail_if(cycles, "the packages import each other in a circle", lines)


def test_kernel_imports_nothing_else_of_the_house() -> None:
    found = [imp for (source, _), imps in package_imports().items() if source == KERNEL for imp in imps]
    _fail_if(found, "facmon.kernel is the bottom: it may import only itself", (imp.where(modules()) for imp in found))


def test_nothing_imports_the_shell() -> None:
    found = [imp for (_, target), imps in package_imports().items() if target == SHELL for imp in imps]
    found += [imp for imp in imports() if imp.source == "facmon" and package_of(imp.target) == SHELL]
    _fail_if(
        found,
        "facmon.shell is the top: only facmon.shell itself and facmon/__main__.py may import it",
        (imp.where(modules()) for imp in found),
    )


def test_layers_only_import_downwards() -> None:
    layer = {package: number for number, members in enumerate(LAYERS) for package in members}
    upward = [
        imp
        for (source, target), imps in sorted(package_imports().items())
        if source in layer and target in layer and layer[target] >= layer[source]
        for imp in imps
    ]
    _fail_if(
        upward,
        "imports of a package in the same or a higher layer (LAYERS in tests/test_architecture.py, lowest first)",
        (
            f"{imp.where(modules())}  [layer {layer[package_of(imp.source) or '']} -> "
            f"{layer[package_of(imp.target) or '']}]"
            for imp in upward
        ),
    )


# --- the files ---------------------------------------------------------------------------------------------------


def test_no_file_level_import_cycle() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for imp in imports():
        if not imp.type_only:
            edges[imp.source].add(imp.target)
    cycles = strongly_connected(sorted(modules()), edges)
    lines = []
    for cycle in cycles:
        lines.append("cycle: " + ", ".join(cycle))
        members = set(cycle)
        lines.extend(
            "  " + imp.where(modules())
            for imp in imports()
            if not imp.type_only and imp.source in members and imp.target in members
        )
    _fail_if(cycles, "modules that import each other (at run time) in a circle", lines)


def test_no_import_below_code() -> None:
    pattern = re.compile(r"#\s*noqa:[^#\n]*\bE402\b")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in modules().values()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    _fail_if(found, "`# noqa: E402` in package code: move the import to the top", found)


def test_modules_are_small() -> None:
    big = sorted(
        (count, str(path.relative_to(ROOT)))
        for path in modules().values()
        if (count := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    )
    _fail_if(big, f"modules over {MAX_MODULE_LINES} lines", (f"{name}: {count} lines" for count, name in reversed(big)))


def _functions() -> Iterable[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for name, tree in trees().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield name, node


def test_functions_are_short() -> None:
    long = sorted(
        (count, f"{modules()[name].relative_to(ROOT)}:{node.lineno} {node.name}")
        for name, node in _functions()
        if (count := (node.end_lineno or node.lineno) - node.lineno + 1) > MAX_FUNCTION_LINES
    )
    _fail_if(
        long,
        f"functions over {MAX_FUNCTION_LINES} lines",
        (f"{where}: {count} lines" for count, where in reversed(long)),
    )


def test_constructors_take_few_parameters() -> None:
    def count(args: ast.arguments) -> int:
        return len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs) - 1

    big = sorted(
        (count(node.args), f"{modules()[name].relative_to(ROOT)}:{node.lineno}")
        for name, node in _functions()
        if node.name == "__init__" and count(node.args) > MAX_CTOR_PARAMS
    )
    _fail_if(
        big,
        f"constructors over {MAX_CTOR_PARAMS} parameters besides self",
        (f"{where}: {params} parameters" for params, where in reversed(big)),
    )


if __name__ == "__main__":
    for (source, target), found in sorted(package_imports().items()):
        kinds = {"type-only" if i.type_only else "deferred" if i.deferred else "import" for i in found}
        print(f"{source:22} -> {target:22} {len(found):3}  {', '.join(sorted(kinds))}")
