"""The package's layers import only downwards, and no module imports itself back.

Every ``import`` statement of every module is read with :mod:`ast`, function-local ones
included (a local import hides a cycle, it does not remove it).  The layers, bottom to top::

    typing, errors, _version, _atomic, _outputs, _json, _tracing, registry
        < graph < select < nn < models < runs < train, analysis < cli

``train`` and ``analysis`` sit side by side and never import each other; both read and write a
run directory through ``runs``.  Package ``__init__`` files only re-export their own modules;
``dnwgraph/__init__.py`` resolves public names lazily and is left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "dnwgraph"

# module prefix -> layer rank (the longest matching prefix wins)
LAYERS: dict[str, int] = {
    "dnwgraph.typing": 0,
    "dnwgraph.errors": 0,
    "dnwgraph._version": 0,
    "dnwgraph._atomic": 0,
    "dnwgraph._outputs": 0,
    "dnwgraph._json": 0,
    "dnwgraph._tracing": 0,
    "dnwgraph.registry": 0,
    "dnwgraph.graph": 1,
    "dnwgraph.select": 2,
    "dnwgraph.nn": 3,
    "dnwgraph.models": 4,
    "dnwgraph.runs": 5,
    "dnwgraph.train": 6,
    "dnwgraph.analysis": 6,
    "dnwgraph.demo": 7,
    "dnwgraph.cli": 8,
    "dnwgraph.__main__": 9,
}
# the package itself: only the version string is read from it (no torch import)
TOP = "dnwgraph"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _typing_only(tree: ast.Module) -> set[int]:
    """Ids of the import nodes under ``if TYPE_CHECKING:`` (never run, so they close no cycle)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            ids |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return ids


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """First-party modules imported anywhere in ``path``: (module, line, typing only)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    tree = ast.parse(path.read_text(), str(path))
    typing_only = _typing_only(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                targets = [".".join(base + ([node.module] if node.module else []))]
            else:
                targets = [node.module or ""]
            # ``from dnwgraph.x import y`` imports the submodule ``y`` when there is one
            targets = [f"{targets[0]}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            if t == TOP or t.startswith(TOP + "."):
                found.append((t, node.lineno, id(node) in typing_only))
    return found


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The module a dotted import target names (``dnwgraph.nn.WiringConv`` -> ``dnwgraph.nn``)."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def _layer(module: str) -> tuple[str, int]:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return best, LAYERS[best]


def _edges(runtime: bool = False) -> list[tuple[str, str, int]]:
    """(importer, imported, line); ``runtime``: without the ``TYPE_CHECKING`` imports."""
    modules = _modules()
    edges = set()
    for name, path in modules.items():
        if name == TOP:
            continue
        for target, line, typing_only in _imports(path):
            resolved = _resolve(target, modules)
            if resolved is not None and resolved != name and not (runtime and typing_only):
                edges.add((name, resolved, line))
    return sorted(edges)


def test_every_module_has_a_layer():
    unplaced = [
        m
        for m in _modules()
        if m != TOP and not any(m == p or m.startswith(p + ".") for p in LAYERS)
    ]
    assert unplaced == []


def test_imports_go_down():
    wrong = []
    for src, dst, line in _edges():
        if dst == TOP:
            continue
        (src_layer, src_rank), (dst_layer, dst_rank) = _layer(src), _layer(dst)
        if src_layer == dst_layer:
            continue  # inside one layer: checked for cycles below
        # the helpers at the bottom may use one another; train and analysis may not
        if dst_rank > src_rank or (dst_rank == src_rank and src_rank > 0):
            wrong.append(f"{src}:{line} imports {dst} ({src_layer} -> {dst_layer})")
    assert wrong == []


def test_no_module_imports_the_package_root():
    # the root resolves public names lazily; its version lives in ``dnwgraph._version``
    bad = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == TOP and not node.level:
                bad.append(f"{name}:{node.lineno} imports {[a.name for a in node.names]}")
    assert bad == []


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                return stack[stack.index(w) :] + [w]
            if w not in state and (found := visit(w)) is not None:
                return found
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state and (found := visit(v)) is not None:
            return found
    return None


def test_no_import_cycles():
    # package __init__ files re-export their submodules; a submodule importing its own
    # package's __init__ would close a loop, so those edges count too
    graph: dict[str, set[str]] = {}
    for src, dst, _ in _edges(runtime=True):
        if dst != TOP:
            graph.setdefault(src, set()).add(dst)
    assert _cycle(graph) is None


def _print_report() -> None:  # pragma: no cover - a helper for humans: python tests/test_layers.py
    for src, dst, line in _edges():
        if dst == TOP:
            continue
        (sl, sr), (dl, dr) = _layer(src), _layer(dst)
        if sl != dl and (dr > sr or (dr == sr and sr > 0)):
            print(f"climbs: {src}:{line} -> {dst}")
    graph: dict[str, set[str]] = {}
    for src, dst, _ in _edges(runtime=True):
        if dst != TOP:
            graph.setdefault(src, set()).add(dst)
    while (c := _cycle(graph)) is not None:
        print("cycle:", " -> ".join(c))
        graph[c[-2]].discard(c[-1])


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


@pytest.mark.parametrize(
    ("src", "dst", "ok"),
    [
        ("dnwgraph.models.static", "dnwgraph.nn.levels", True),
        ("dnwgraph.nn.levels", "dnwgraph.models.static", False),
        ("dnwgraph.train.loop", "dnwgraph.analysis.metrics", False),
        ("dnwgraph.analysis.report", "dnwgraph.train.loop", False),
        ("dnwgraph.analysis.report", "dnwgraph.runs", True),
    ],
)
def test_layer_order(src, dst, ok):
    (sl, sr), (dl, dr) = _layer(src), _layer(dst)
    assert (sl == dl or dr < sr) == ok


if __name__ == "__main__":
    _print_report()


def test_no_cache_is_keyed_on_private_tensor_state():
    # caches compare values (nn/plans.py): Tensor._version is PyTorch's private counter
    hits = [
        f"{path.relative_to(ROOT.parent)}:{node.lineno}"
        for path in sorted(ROOT.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr == "_version"
    ]
    assert hits == []


# ------------------------------------------------ what crosses a subpackage, and how long


def _package_of(module: str, modules: dict[str, Path]) -> str:
    """The package of ``module``: itself for a package, else its parent."""
    path = modules.get(module)
    return module if path is not None and path.name == "__init__.py" else module.rpartition(".")[0]


def _private_crossings() -> list[str]:
    """Imports of a private module or name (``_x``) from outside the package that owns it.

    A private module belongs to the package that holds it (``dnwgraph._atomic`` to the whole
    package, ``dnwgraph.graph._checks`` to ``dnwgraph.graph``), a private name to its
    module's package; only modules inside the owner may import it."""
    modules, bad = _modules(), []
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                continue
            parts = node.module.split(".")
            if parts[0] != TOP:
                continue
            owners = [
                ".".join(parts[:i])
                for i, p in enumerate(parts)
                if p.startswith("_") and not p.endswith("__")
            ][:1]
            source = _resolve(node.module, modules) or node.module
            owners += [
                _package_of(source, modules)
                for a in node.names
                if a.name.startswith("_") and not a.name.endswith("__")
            ]
            for owner in owners:
                if not (name == owner or name.startswith(owner + ".")):
                    bad.append(f"{name}:{node.lineno} imports a private part of {node.module}")
    return bad


def test_no_private_name_crosses_a_subpackage():
    assert _private_crossings() == []


def test_layers_and_models_use_only_the_public_kernel_interface():
    # the kernels' modules are theirs: everything else imports from dnwgraph.nn.kernels
    kernels = "dnwgraph.nn.kernels"
    bad = [
        f"{src}:{line} imports {dst}"
        for src, dst, line in _edges()
        if dst.startswith(kernels + ".") and not src.startswith(kernels)
    ]
    assert bad == []


def test_no_cycle_even_through_type_checking_imports():
    graph: dict[str, set[str]] = {}
    for src, dst, _ in _edges():  # TYPE_CHECKING imports included
        if dst != TOP:
            graph.setdefault(src, set()).add(dst)
    assert _cycle(graph) is None


def _handler_strings() -> list[tuple[str, str, int]]:
    """``"dnwgraph.x.y:function"`` strings (the CLI's lazily imported handlers):
    (importer, target module, line)."""
    found = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            value = node.value if isinstance(node, ast.Constant) else None
            if isinstance(value, str) and value.startswith(TOP + ".") and ":" in value:
                module, _, func = value.partition(":")
                if func.isidentifier() and all(p.isidentifier() for p in module.split(".")):
                    found.append((name, module, node.lineno))
    return found


def test_the_cli_handler_strings_are_imports_that_go_down():
    import importlib

    found = _handler_strings()
    assert len(found) >= 3  # the commands' handlers are seen
    modules = _modules()
    for src, module, line in found:
        assert module in modules, f"{src}:{line} names {module}, which does not exist"
        (sl, sr), (dl, dr) = _layer(src), _layer(module)
        assert sl == dl or dr < sr, f"{src}:{line} names {module} ({sl} -> {dl})"
    for src, module, _ in found:
        handler = next(
            v
            for n in ast.walk(ast.parse(modules[src].read_text()))
            if isinstance(n, ast.Constant)
            and isinstance(v := n.value, str)
            and v.startswith(module + ":")
        )
        assert callable(getattr(importlib.import_module(module), handler.partition(":")[2]))


MAX_LINES = 80


def _code_lines(node: ast.AST, lines: list[str]) -> int:
    """Lines of code of a function: no docstring, blank or comment-only lines."""
    body = node.body  # type: ignore[attr-defined]
    doc = None
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        if isinstance(first.value.value, str):
            doc = (first.lineno, first.end_lineno)
    count = 0
    for i in range(node.lineno, node.end_lineno + 1):  # type: ignore[attr-defined]
        text = lines[i - 1].strip()
        if text and not text.startswith("#") and not (doc and doc[0] <= i <= doc[1]):
            count += 1
    return count


def _long_functions() -> dict[str, int]:
    found = {}
    for name, path in _modules().items():
        source = path.read_text()
        lines = source.split("\n")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = _code_lines(node, lines)
                if n > MAX_LINES:
                    found[f"{name}.{node.name}"] = n
    return found


def test_no_function_is_longer_than_a_screen():
    assert _long_functions() == {}


def test_the_line_count_leaves_out_docstrings_and_comments():
    src = 'def f():\n    """Doc.\n\n    More."""\n    # a comment\n\n    x = 1\n    return x\n'
    (node,) = ast.parse(src).body
    assert _code_lines(node, src.split("\n")) == 3  # def, x = 1, return
