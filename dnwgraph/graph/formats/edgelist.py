"""``.txt`` and ``.edgelist``: plain edge lists, as ``networkx.write_edgelist`` writes them.

One edge per line, ``source target``, separated by whitespace or by commas, then optionally a
weight column (``0 1 0.5``) or networkx's attribute dict (``0 1 {'weight': 0.5}``; the weight is
``edge_weight``, else ``weight``). Blank lines and ``#`` comments are skipped. Every line has the
same separator and the same columns; node ids are plain integers (``10.0`` is 10).

Written: ``source target {'edge_weight': w, 'weight': |w|}`` per edge in edge order (``source
target`` for a wiring without weights), after three comment lines that networkx skips and this
reader uses, so that nodes without edges and the roles survive::

    # dnwgraph wiring: num_nodes=4 acyclic=true self_loops=false
    # input_nodes: 0 1
    # output_nodes: 3

``networkx.read_edgelist(path, nodetype=int, create_using=networkx.DiGraph)`` reads it back.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Data

from dnwgraph.errors import DNWGraphError
from dnwgraph.graph.convert import as_flag, edge_weight_of
from dnwgraph.graph.formats.base import node_id, text_lines

_HEAD = "# dnwgraph wiring:"
_ROLES = ("input_nodes", "output_nodes")


class EdgeListFormat:
    """Reader and writer of ``.txt``/``.edgelist`` files (see the module docstring).

    Example:
        >>> import tempfile
        >>> from dnwgraph import Wiring, to_data
        >>> path = Path(tempfile.mkdtemp()) / "wiring.txt"
        >>> fmt = EdgeListFormat()
        >>> fmt.write(to_data(Wiring([(0, 2), (1, 2)], edge_weight=[0.5, -1.0])), path)
        >>> data = fmt.read(path)
        >>> data.edge_index.tolist(), data.edge_weight.tolist()
        ([[0, 1], [2, 2]], [0.5, -1.0])
    """

    def read(self, path: Path) -> Data:
        meta: dict[str, Any] = {}
        edges: list[tuple[int, int, dict[str, Any]]] = []
        shape: tuple[str, int, int] | None = None  # separator, columns, first line
        for lineno, line in enumerate(text_lines(path), start=1):
            stripped = line.strip()
            if stripped.startswith("#"):
                _meta(meta, stripped, lineno)
                continue
            if "{" not in stripped and "#" in stripped:
                stripped = stripped[: stripped.index("#")].strip()  # a trailing comment
            if not stripped:
                continue
            u, v, attrs, this = _edge(stripped, lineno)
            if shape is None:
                shape = (*this, lineno)
            elif this != shape[:2]:
                raise DNWGraphError(
                    f"line {lineno}: {_describe(this)}, but line {shape[2]} has "
                    f"{_describe(shape[:2])}; every line needs the same separator and columns"
                )
            edges.append((u, v, attrs))
        if not edges:
            raise DNWGraphError("no edges found; a wiring needs at least one candidate edge")
        return _to_data(edges, meta)

    def write(self, data: Data, path: Path) -> None:
        n = int(data.num_nodes)
        flags = [
            f"{key}={str(as_flag(data[key], repr(key))).lower()}"
            for key in ("acyclic", "self_loops")
            if key in data
        ]
        lines = [" ".join([_HEAD, f"num_nodes={n}", *flags])]
        for name in _ROLES:
            key = name.replace("nodes", "mask")
            if key in data:
                ids = data[key].nonzero().view(-1).tolist()
                lines.append(f"# {name}: {' '.join(map(str, ids))}")
        src, dst = data.edge_index.tolist()
        if data.edge_weight is None:
            lines += [f"{u} {v}" for u, v in zip(src, dst, strict=True)]
        else:
            w = data.edge_weight.tolist()
            lines += [
                f"{u} {v} {{'edge_weight': {x!r}, 'weight': {abs(x)!r}}}"
                for u, v, x in zip(src, dst, w, strict=True)
            ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _describe(shape: tuple[str, int]) -> str:
    sep, cols = shape
    what = {2: "no weight", 3: "a weight column", 0: "an attribute dict"}[cols]
    return f"{'commas' if sep == ',' else 'whitespace'} and {what}"


def _edge(line: str, lineno: int) -> tuple[int, int, dict[str, Any], tuple[str, int]]:
    head, _, tail = line.partition("{")
    sep = "," if "," in head else " "
    cells = [c.strip() for c in (head.split(",") if sep == "," else head.split())]
    if tail and cells and cells[-1] == "":
        cells = cells[:-1]  # "0,1,{...}"
    expected = "two node ids and an attribute dict" if tail else "'source target [weight]'"
    if len(cells) not in ((2,) if tail else (2, 3)):
        raise DNWGraphError(
            f"line {lineno}: unexpected columns: expected {expected} (got {len(cells)} columns: "
            f"{line[:80]!r})"
        )
    u, v = (_node(c, lineno) for c in cells[:2])
    if tail:
        return u, v, _attrs("{" + tail, lineno), (sep, 0)
    attrs = {"weight": cells[2]} if len(cells) == 3 else {}
    return u, v, attrs, (sep, len(cells))


def _node(cell: str, lineno: int) -> int:
    return node_id(cell, lineno)


def _attrs(text: str, lineno: int) -> dict[str, Any]:
    """networkx's attribute dict, read as a flat literal: string keys, once each; number,
    string or bool values. Anything else (nesting, calls, names) is refused."""
    try:
        node = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        raise DNWGraphError(
            f"line {lineno}: the attribute dict is not a Python dict literal "
            f"({type(err).__name__}: {str(err)[:80]})"
        ) from None
    if not isinstance(node, ast.Dict):
        raise DNWGraphError(
            f"line {lineno}: expected an attribute dict {{...}} (got {text[:40]!r})"
        )
    attrs: dict[str, Any] = {}
    for key, value in zip(node.keys, node.values, strict=True):
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            raise DNWGraphError(f"line {lineno}: attribute names must be strings")
        if key.value in attrs:
            raise DNWGraphError(f"line {lineno}: the attribute {key.value!r} is given twice")
        attrs[key.value] = _constant(value, key.value, lineno)
    return attrs


def _constant(node: ast.expr, name: str, lineno: int) -> Any:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = node.operand
        if isinstance(inner, ast.Constant) and type(inner.value) in (int, float):
            return -inner.value if isinstance(node.op, ast.USub) else inner.value
    if isinstance(node, ast.Constant) and type(node.value) in (int, float, str, bool):
        return node.value
    raise DNWGraphError(
        f"line {lineno}: attribute {name!r} must be a number, a string or a bool (got "
        f"{ast.unparse(node)[:40]!r})"
    )


def _meta(meta: dict[str, Any], line: str, lineno: int) -> None:
    """The comment lines this module writes: the node count, the flags and the roles."""
    if line.startswith(_HEAD):
        for item in line[len(_HEAD) :].split():
            key, eq, value = item.partition("=")
            if not eq or key not in ("num_nodes", "acyclic", "self_loops") or key in meta:
                raise DNWGraphError(
                    f"line {lineno}: expected 'num_nodes=N acyclic=true|false "
                    f"self_loops=true|false', each once (got {item!r})"
                )
            meta[key] = (
                _node(value, lineno)
                if key == "num_nodes"
                else as_flag(value, f"line {lineno}: {key!r}")
            )
        return
    for name in _ROLES:
        if line.startswith(f"# {name}:"):
            if name in meta:
                raise DNWGraphError(f"line {lineno}: '{name}' is given twice")
            meta[name] = [_node(c, lineno) for c in line.split(":", 1)[1].split()]


def _to_data(edges: list[tuple[int, int, dict[str, Any]]], meta: dict[str, Any]) -> Data:
    src = [u for u, _, _ in edges]
    dst = [v for _, v, _ in edges]
    named = {*src, *dst, *(v for r in _ROLES for v in meta.get(r, ()))}
    n = meta.get("num_nodes", max(named) + 1)
    data = Data(edge_index=torch.tensor([src, dst]), num_nodes=n)
    if "num_nodes" not in meta:  # the count is inferred: read_data checks it
        data.named_nodes = len(named)
    weight = edge_weight_of(edges)
    if weight is not None:
        data.edge_weight = weight
    for name in _ROLES:
        if name in meta:
            ids = meta[name]
            bad = [i for i in ids if not 0 <= i < n]
            if bad:
                raise DNWGraphError(f"'{name}' holds node {bad[0]} outside [0, {n})")
            mask = torch.zeros(n, dtype=torch.bool)
            mask[ids] = True
            data[name.replace("nodes", "mask")] = mask
    for key in ("acyclic", "self_loops"):
        if key in meta:
            data[key] = meta[key]
    return data
