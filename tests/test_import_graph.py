"""The import graph of `ghostpay/`: no cycles, and no import from a lower layer to a higher one.

Every `import` / `from ... import` statement of every module counts, wherever it is: at the top or inside
a function (a deferred import is still a dependency, only a later one: the issue counts them).

Imports under `if TYPE_CHECKING:` count for the layers, not for the cycles. A lower layer must not even
name a higher layer's types (to read or type-check it you would need the layer above). But an
annotation-only import never runs, so it cannot make an import-order cycle, and it is how a type and the
helpers that take it are typed both ways (`cli.context.State` and `cli.output.emit(state: State, ...)`):
the helpers do not use the module of `State` at run time, the edge only says what the parameter is.

An import names the most specific module it loads: `from ghostpay.x402 import buyer` is an edge to
`ghostpay.x402.buyer`, `from ghostpay.x402.buyer import X402Buyer` too; `from ghostpay.x402 import
x402_http` (a name defined in the package) is an edge to `ghostpay.x402`. The parent packages'
`__init__` modules Python runs on the way are not edges (each package's `__init__` is its own node).

Two graphs are checked: modules (`ghostpay.cli.main`), and units, a unit being one of `ghostpay`'s
subpackages (`ghostpay.cli`, every module in it) or one of its top-level modules (`ghostpay.client`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "ghostpay"

# The layers, lowest first: a module may import its own layer and the ones below, never one above.
# Units not listed are core SDK. x402, indexer and localnet sit side by side in one layer, and so do
# cli and mcp: imports between siblings are allowed (cycles among them are not: the cycle check
# still applies).
LAYERS: list[tuple[str, set[str]]] = [
    (
        "generated",
        {
            "ghostpay.accounts",
            "ghostpay.instructions",
            "ghostpay.types",
            "ghostpay.errors",
            "ghostpay.program_id",
            "ghostpay.program",
        },
    ),
    ("core", set()),  # everything else: client, pda, tokens, keypairs, exceptions, spending, indexer_api...
    ("services", {"ghostpay.x402", "ghostpay.indexer", "ghostpay.localnet"}),
    ("analytics", {"ghostpay.analytics"}),
    ("apps", {"ghostpay.cli", "ghostpay.mcp"}),
]
DEFAULT_LAYER = "core"
LAYER_RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py"


def resolve(name: str) -> str | None:
    """The longest prefix of `name` that is a module of the package (None: outside it)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules():
            return candidate
        parts.pop()
    return None


def is_type_checking(test: ast.expr) -> bool:
    return (
        isinstance(test, ast.Name)
        and test.id == "TYPE_CHECKING"
        or isinstance(test, ast.Attribute)
        and test.attr == "TYPE_CHECKING"
    )


def import_nodes(tree: ast.AST, type_only: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement anywhere in `tree`, with whether it sits under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, type_only
        elif isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.body:
                yield from import_nodes(ast.Module(body=[child], type_ignores=[]), True)
            for child in node.orelse:
                yield from import_nodes(ast.Module(body=[child], type_ignores=[]), type_only)
        else:
            yield from import_nodes(node, type_only)


def targets(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The package's modules one import statement of `module` loads."""
    if isinstance(node, ast.Import):
        return set(filter(None, (resolve(alias.name) for alias in node.names)))
    base = module if is_package(module) else module.rpartition(".")[0]
    if node.level:
        parts = base.split(".")
        source = ".".join(parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    out = set()
    for alias in node.names:  # `from pkg import submodule` names the submodule
        found = resolve(f"{source}.{alias.name}")
        if found is None or found == resolve(source):
            found = resolve(source)
        if found is not None:
            out.add(found)
    return out


def imported(module: str, tree: ast.AST) -> dict[str, bool]:
    """The package's modules `module` imports, anywhere in its body: module -> imported under TYPE_CHECKING only."""
    out: dict[str, bool] = {}
    for node, type_only in import_nodes(tree):
        for target in targets(module, node) - {module}:
            out[target] = out.get(target, True) and type_only
    return out


@lru_cache(maxsize=1)
def all_imports() -> dict[str, dict[str, bool]]:
    return {name: imported(name, ast.parse(path.read_text(), str(path))) for name, path in modules().items()}


def module_graph(type_checking: bool = False) -> dict[str, set[str]]:
    """module -> the modules it imports (those imported only for type checking too, if `type_checking`)."""
    return {
        name: {t for t, type_only in found.items() if type_checking or not type_only}
        for name, found in all_imports().items()
    }


def unit(module: str) -> str:
    """`ghostpay.cli.main` -> `ghostpay.cli`; `ghostpay.client` -> itself; `ghostpay` -> itself."""
    return ".".join(module.split(".")[:2])


def unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for source, targets in module_graph().items():
        graph.setdefault(unit(source), set()).update(unit(t) for t in targets if unit(t) != unit(source))
    return graph


def layer(module: str) -> str:
    return next((name for name, units in LAYERS if unit(module) in units), DEFAULT_LAYER)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path a -> ... -> a) per strongly connected component with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [cycle_path(graph, component) for component in components]


def cycle_path(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first node (breadth first inside the component)."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph.get(node, ()) & component):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start] + path[::-1][1:] + [start] if node != start else [start, start]
                if nxt not in parents:
                    parents[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle in {component}")


def describe(found: list[list[str]], graph: dict[str, set[str]]) -> str:
    """Each cycle's path, and every member of its strongly connected component (all must be untangled)."""
    lines = []
    for path in found:
        members = component_of(graph, path[0])
        lines.append(
            " -> ".join(path)
            + (f"   (one of the cycles among: {', '.join(sorted(members))})" if len(members) > len(path) - 1 else "")
        )
    return "\n".join(lines)


def component_of(graph: dict[str, set[str]], node: str) -> set[str]:
    """The nodes that reach `node` and that `node` reaches."""

    def reach(start: str, edges: dict[str, set[str]]) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reverse: dict[str, set[str]] = {}
    for source, targets in graph.items():
        for target in targets:
            reverse.setdefault(target, set()).add(source)
    return reach(node, graph) & reach(node, reverse)


def test_the_graph_sees_the_package():
    """A sanity check of the walk itself: known edges of each kind are found."""
    graph = module_graph()
    assert "ghostpay.client" in graph["ghostpay.sync_client"]  # top-level `from ghostpay.client import ...`
    assert "ghostpay.cli.main" in graph  # and subpackages are walked
    assert len(graph) > 100
    assert "ghostpay.cli.context" not in graph["ghostpay.cli.output"]  # under TYPE_CHECKING only
    assert "ghostpay.cli.context" in module_graph(type_checking=True)["ghostpay.cli.output"]
    assert "ghostpay.client" in graph["ghostpay.cli.context"]  # inside State.client()


def test_no_module_cycles():
    graph = module_graph()
    found = cycles(graph)
    assert not found, f"import cycles between modules:\n{describe(found, graph)}"


def test_no_package_cycles():
    graph = unit_graph()
    found = cycles(graph)
    assert not found, f"import cycles between packages:\n{describe(found, graph)}"


def test_layers_only_import_downwards():
    upward = sorted(
        f"{source} ({layer(source)}) -> {target} ({layer(target)})"
        for source, imports in module_graph(type_checking=True).items()
        for target in imports
        if LAYER_RANK[layer(target)] > LAYER_RANK[layer(source)]
    )
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


@pytest.mark.parametrize(
    "graph, expected",
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c", "a"]]),
        ({"a": {"b"}, "b": set()}, []),
    ],
)
def test_cycles_are_reported_as_paths(graph, expected):
    assert cycles(graph) == expected
