"""The package's import graph has layers: the training loop and its callbacks import no circle.

Every module of ``mlbasics/`` is parsed (never imported) and each ``import`` of an mlbasics module
is an edge, at module level and inside functions alike (a deferred import still ties the two
modules together), but not under ``if TYPE_CHECKING:`` (which only annotations see). ``from
mlbasics import Name`` is an edge to the module that defines ``Name``, as the package's lazy
``__getattr__`` resolves it. The implicit import of a parent package is not an edge: every module
has it, and a package's ``__init__`` only re-exports.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "mlbasics"

#: The modules a run goes through, from the callback protocol up to the notebook's live plot.
TRAINING = {
    f"mlbasics.{name}"
    for name in (
        "core.callbacks",
        "engine.setup",
        "engine.loop",
        "engine.results",
        "engine.steppers",
        "data.batches",
        "engine.metrics",
        "training.divergence",
        "show.progress",
        "runs.checkpoints",
        "training.runner",
        "training.resuming",
        "show.notebook",
        "training.anomaly",
    )
}
#: The loop and what it knows: the callback protocol, the setup, the steps, the result. None of
#: them may reach (even through other modules) the callbacks that a run adds, or what adds them.
LOOP = {
    f"mlbasics.{name}"
    for name in ("core.callbacks", "engine.loop", "engine.setup", "engine.steppers", "engine.results")
}
RUN_COMPANY = {
    f"mlbasics.{name}"
    for name in (
        "training.runner",
        "runs.checkpoints",
        "show.progress",
        "training.divergence",
        "training.resuming",
        "show.notebook",
        "training.anomaly",
    )
}

#: The packages of mlbasics, lowest first: each may import the ones before it, never one after it.
#: The top-level modules (errors, devices, notes, ...) come before them all and import none of them;
#: what users and plugins see (the package's ``__init__``, ``__main__``, the command line, the
#: built-in plugin, the testing kit and the scikit-learn estimators) comes after them all and may
#: import any.
LAYERS = ("distributed", "core", "show", "data", "engine", "runs", "training", "sweeps")
FACE = ("builtin", "cli", "testing", "sklearn")
#: Imports against the order, each with its reason. Keep it short.
ALLOWED_AGAINST_THE_ORDER = {
    # The registry loads the built-in plugin the way it loads any plugin (Registry.isolated()).
    ("mlbasics.core.registry", "mlbasics.builtin"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except those under ``if TYPE_CHECKING:`` (its
    ``else:`` branch runs, and counts)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for branch in node.orelse:
                yield from import_nodes(ast.Module(body=[branch], type_ignores=[]))
        else:
            yield from import_nodes(node)


def reexports(package: str) -> dict[str, str]:
    """Name -> defining module for what a package's ``__init__`` imports at run time, and for
    the lazy names of its ``_LAZY`` table (mlbasics' own ``__getattr__``)."""
    tree = ast.parse(MODULES[package].read_text(encoding="utf-8"))
    names: dict[str, str] = {}
    for node in import_nodes(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {alias.asname or alias.name: node.module for alias in node.names}
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == "_LAZY" and node.value is not None:
            names |= ast.literal_eval(node.value)
    return names


def resolve(package: str, name: str) -> str:
    """The module ``from package import name`` makes the importer depend on."""
    if f"{package}.{name}" in MODULES:
        return f"{package}.{name}"
    if is_package(package):
        defined_in = reexports(package).get(name)
        if defined_in in MODULES:
            return defined_in
    return package


def imports_of(name: str) -> set[str]:
    """The mlbasics modules that module ``name`` imports (at run time)."""
    path = MODULES[name]
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in MODULES}
            continue
        base = node.module or ""
        if node.level:
            anchor = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
            base = f"{anchor}.{base}" if base else anchor
        if base in MODULES:
            found |= {resolve(base, alias.name) for alias in node.names}
    found.discard(name)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted: every
    import circle lies within one of them."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def path(graph: dict[str, set[str]], start: str, goal: str) -> list[str]:
    """One chain of imports from ``start`` to ``goal`` (breadth first: a shortest one)."""
    came_from = {start: start}
    todo = [start]
    while todo:
        node = todo.pop(0)
        if node == goal:
            chain = [node]
            while chain[-1] != start:
                chain.append(came_from[chain[-1]])
            return chain[::-1]
        for target in sorted(graph[node]):
            if target not in came_from:
                came_from[target] = node
                todo.append(target)
    return []


def test_the_graph_is_read() -> None:
    # Guards the tests below against passing on an empty or misread graph.
    assert set(MODULES) >= TRAINING
    assert "mlbasics.core.callbacks" in GRAPH["mlbasics.engine.loop"]
    assert "mlbasics.engine.loop" in GRAPH["mlbasics.training.runner"]  # `from ... import fit`
    assert "mlbasics.show.progress" in GRAPH["mlbasics.training.runner"]  # imported inside run()
    assert "mlbasics.engine.results" not in GRAPH["mlbasics.core.callbacks"]  # only under TYPE_CHECKING
    assert GRAPH["mlbasics.cli.list"] >= {"mlbasics.core.registry"}


def test_reading_imports_follows_the_rules() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import mlbasics.engine.loop\n"
        "from mlbasics import Metric, build\n"
        "from mlbasics.builtin import metrics\n"
        "if TYPE_CHECKING:\n"
        "    from mlbasics.training.runner import train\n"
        "def later():\n"
        "    from mlbasics.show.progress import ProgressBar\n"
    )
    tree = ast.parse(source)
    modules = set()
    for node in import_nodes(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif node.module:
            modules |= {resolve(node.module, alias.name) for alias in node.names if node.module in MODULES}
    assert modules == {
        "mlbasics.engine.loop",
        "mlbasics.engine.metrics",  # Metric, through the package's lazy table
        "mlbasics",  # build() is defined in the package itself
        "mlbasics.builtin.metrics",
        "mlbasics.show.progress",  # deferred, but an import all the same
    }


@pytest.mark.parametrize("module", sorted(TRAINING))
def test_no_training_module_is_in_an_import_circle(module: str) -> None:
    circle = next((component for component in cycles(GRAPH) if module in component), None)
    assert circle is None, (
        f"{module} is in an import circle with {', '.join(m for m in circle if m != module)}: "
        f"{' -> '.join(path(GRAPH, module, next(m for m in circle if m != module)))} and back "
        f"{' -> '.join(path(GRAPH, next(m for m in circle if m != module), module))}"
    )


@pytest.mark.parametrize("module", sorted(LOOP))
def test_the_loop_does_not_reach_what_a_run_adds_to_it(module: str) -> None:
    reached = reachable(GRAPH, module) & RUN_COMPANY
    assert not reached, "; ".join(" -> ".join(path(GRAPH, module, target)) for target in sorted(reached))


def test_the_package_has_no_import_circle() -> None:
    assert cycles(GRAPH) == []


def layer(module: str) -> int:
    """Where ``module`` stands: 0 for the top-level modules, then the packages of :data:`LAYERS`
    in order, then the face."""
    parts = module.split(".")
    if module == "mlbasics" or parts[1] == "__main__" or parts[1] in FACE:
        return len(LAYERS) + 1
    if parts[1] in LAYERS:
        return LAYERS.index(parts[1]) + 1
    assert len(parts) == 2, f"{module} belongs to no layer: add its package to LAYERS"
    assert not is_package(module), f"{module} belongs to no layer: add it to LAYERS"
    return 0


def test_every_package_has_a_layer_and_says_what_it_is_for() -> None:
    packages = {name.split(".")[1] for name in MODULES if name.count(".") >= 1 and is_package(name)}
    assert packages == set(LAYERS) | {name for name in FACE if is_package(f"mlbasics.{name}")}
    assert all(f"mlbasics.{name}" in MODULES for name in FACE)
    for name in LAYERS:
        docstring = ast.get_docstring(ast.parse(MODULES[f"mlbasics.{name}"].read_text(encoding="utf-8")))
        assert docstring, f"mlbasics/{name}/__init__.py has no docstring"
        assert "Imports:" in docstring, f"mlbasics/{name}/__init__.py does not say what it may import"


def test_the_top_level_holds_at_most_a_dozen_modules() -> None:
    top = [name for name in MODULES if name.count(".") == 1 and not is_package(name)]
    assert len(top) <= 12, sorted(top)


def against_the_order(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{source} (layer {layer(source)}) imports {target} (layer {layer(target)})"
        for source, targets in graph.items()
        for target in targets
        if layer(target) > layer(source) and (source, target) not in ALLOWED_AGAINST_THE_ORDER
    )


def test_no_package_imports_one_above_it() -> None:
    assert against_the_order(GRAPH) == []


def test_every_allowed_exception_is_still_needed() -> None:
    for source, target in ALLOWED_AGAINST_THE_ORDER:
        assert target in GRAPH[source], f"{source} no longer imports {target}: drop the exception"


def test_the_order_check_can_fail() -> None:
    # The check above reads the real graph; here an edge against the order is added by hand.
    graph = {name: set(targets) for name, targets in GRAPH.items()}
    graph["mlbasics.data.splits"].add("mlbasics.engine.setup")
    graph["mlbasics.errors"].add("mlbasics.core.specs")
    assert against_the_order(graph) == [
        "mlbasics.data.splits (layer 4) imports mlbasics.engine.setup (layer 5)",
        "mlbasics.errors (layer 0) imports mlbasics.core.specs (layer 2)",
    ]


def test_scikit_learn_is_imported_only_by_its_face_module() -> None:
    # mlbasics.sklearn is optional (the sklearn extra): nothing else may need scikit-learn.
    importers = sorted(
        {
            name
            for name, path in MODULES.items()
            for node in import_nodes(ast.parse(path.read_text(encoding="utf-8")))
            if any(
                module == "sklearn" or module.startswith("sklearn.")
                for module in (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""] * (node.level == 0)
                )
            )
        }
    )
    assert importers == ["mlbasics.sklearn"]
