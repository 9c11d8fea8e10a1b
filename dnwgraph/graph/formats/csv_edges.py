r"""``.csv``: one edge per row, readable by pandas and networkx as they are.

Written::

    source,target,edge_weight,weight,source_input_mask,source_output_mask,target_input_mask,target_output_mask
    0,3,-0.52,0.52,true,false,false,false

``edge_weight`` is the signed :math:`w`, ``weight`` the strength :math:`|w|` (both only for a
weighted wiring); the four ``*_mask`` columns are the roles of the two endpoints, named as in
:mod:`dnwgraph.graph.convert`; ``module`` (the model's module) and ``selected`` follow when the
export has them. ``pandas.read_csv(path)`` reads it, and
``networkx.from_pandas_edgelist(df, edge_attr=True, create_using=networkx.DiGraph)`` makes the
graph.

Read: a header naming ``source`` and ``target`` and any of the columns above (others are
refused), or no header and two columns (``source,target``) or three (``source,target,weight``).
Blank lines and lines starting with ``#`` are skipped; a UTF-8 byte-order mark is skipped. Node
ids are plain integers (``10.0`` is 10); the roles of a node must agree on every row. A CSV
holds edges only: nodes without an edge are not stored (pass ``num_nodes=`` when reading back).
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

import torch
from torch_geometric.data import Data

from dnwgraph.errors import DNWGraphError
from dnwgraph.graph.convert import as_number
from dnwgraph.graph.formats.base import node_id, text_lines

ROLE_COLUMNS: tuple[str, ...] = (
    "source_input_mask",
    "source_output_mask",
    "target_input_mask",
    "target_output_mask",
)
COLUMNS: tuple[str, ...] = (
    "source",
    "target",
    "edge_weight",
    "weight",
    *ROLE_COLUMNS,
    "module",
    "selected",
)
_NUMERIC = re.compile(r"[-+.]?[0-9]")
_TRUE, _FALSE = ("true", "1"), ("false", "0")


class CSVFormat:
    """Reader and writer of ``.csv`` edge lists (see the module docstring).

    Example:
        >>> import tempfile
        >>> from dnwgraph import Wiring, to_data
        >>> path = Path(tempfile.mkdtemp()) / "wiring.csv"
        >>> fmt = CSVFormat()
        >>> fmt.write(to_data(Wiring([(0, 2), (1, 2)], edge_weight=[0.5, -1.0])), path)
        >>> data = fmt.read(path)
        >>> data.edge_index.tolist(), data.edge_weight.tolist()
        ([[0, 1], [2, 2]], [0.5, -1.0])
    """

    def read(self, path: Path) -> Data:
        rows = _rows(path)
        if not rows:
            raise DNWGraphError("no edges found; a wiring needs at least one candidate edge")
        lineno, first = rows[0]
        header = None if _numeric(first[0]) else _header(lineno, first)
        if header is None:
            header = _headerless(rows)
        else:
            rows = rows[1:]
        return _to_data(header, rows)

    def write(self, data: Data, path: Path) -> None:
        header, columns = _columns(data)
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(zip(*columns, strict=True))


def _rows(path: Path) -> list[tuple[int, list[str]]]:
    text = "\n".join(text_lines(path))
    rows = []
    try:
        for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            cells = [c.strip() for c in row]
            if len(cells) == 1:
                _wrong_separator(lineno, cells[0])
            rows.append((lineno, cells))
    except csv.Error as err:
        raise DNWGraphError(f"not a CSV edge list ({err})") from None
    return rows


def _numeric(cell: str) -> bool:
    """Whether a first cell reads as a number (a row of edges), not a column name."""
    return bool(_NUMERIC.match(cell)) or cell[:1].isdigit()


def _wrong_separator(lineno: int, cell: str) -> None:
    for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars"), (" ", "spaces")):
        if sep in cell:
            raise DNWGraphError(
                f"line {lineno}: the columns are separated by {name} ({cell!r}); a wiring CSV is "
                "comma-separated: 'source,target' (a .txt or .edgelist file may use spaces)"
            )
    raise DNWGraphError(
        f"line {lineno}: expected two integer node ids 'source,target' (got {cell!r:.80})"
    )


def _header(lineno: int, cells: list[str]) -> list[str]:
    names = [c.lower() for c in cells]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise DNWGraphError(f"line {lineno}: the header names the column {name!r} twice")
        if name not in COLUMNS:
            raise DNWGraphError(
                f"line {lineno}: unexpected column {cells[i]!r}; a wiring CSV has the columns "
                f"{list(COLUMNS)} (source and target required)"
            )
    if "source" not in names or "target" not in names:
        raise DNWGraphError(
            f"line {lineno}: a header must name 'source' and 'target' columns (got "
            f"{','.join(cells)!r})"
        )
    for role in ("input_mask", "output_mask"):
        pair = [f"source_{role}" in names, f"target_{role}" in names]
        if any(pair) and not all(pair):
            raise DNWGraphError(
                f"line {lineno}: columns 'source_{role}' and 'target_{role}' come together"
            )
    return names


def _headerless(rows: list[tuple[int, list[str]]]) -> list[str]:
    width = len(rows[0][1])
    if width not in (2, 3):
        raise DNWGraphError(
            f"line {rows[0][0]}: unexpected columns: a CSV without a header has 'source,target' "
            f"or 'source,target,weight' (got {width} columns: {','.join(rows[0][1])!r})"
        )
    return ["source", "target", "weight"][:width]


def _to_data(header: list[str], rows: list[tuple[int, list[str]]]) -> Data:
    col = {name: i for i, name in enumerate(header)}
    src, dst, weights = [], [], []
    roles: dict[str, dict[int, tuple[bool, int]]] = {"input_mask": {}, "output_mask": {}}
    wkey = "edge_weight" if "edge_weight" in col else "weight" if "weight" in col else None
    for lineno, cells in rows:
        if len(cells) != len(header):
            raise DNWGraphError(
                f"line {lineno}: expected {len(header)} columns as the header "
                f"{','.join(header)!r} (got {len(cells)}: {','.join(cells)!r})"
            )
        u, v = _node(lineno, cells[col["source"]]), _node(lineno, cells[col["target"]])
        src.append(u)
        dst.append(v)
        if wkey is not None:
            weights.append(_weight(lineno, cells[col[wkey]], wkey))
        if "selected" in col:
            _flag(lineno, cells[col["selected"]], "selected")
        for name in ROLE_COLUMNS:
            if name in col:
                end, role = name.split("_", 1)
                node = u if end == "source" else v
                _role(roles[role], node, _flag(lineno, cells[col[name]], name), lineno, role)
    if not src:
        raise DNWGraphError("no edges found; a wiring needs at least one candidate edge")
    data = Data(edge_index=torch.tensor([src, dst]), num_nodes=max(max(src), max(dst)) + 1)
    data.named_nodes = len(set(src) | set(dst))  # the count is inferred: read_data checks it
    if wkey is not None:
        data.edge_weight = torch.tensor(weights)
    for role, marks in roles.items():
        if f"source_{role}" in col:
            mask = torch.zeros(int(data.num_nodes), dtype=torch.bool)
            mask[[v for v, (on, _) in marks.items() if on]] = True
            data[role] = mask
    return data


def _node(lineno: int, cell: str) -> int:
    return node_id(cell, lineno)


def _weight(lineno: int, cell: str, name: str) -> float:
    w = as_number(cell, f"line {lineno}: {name!r}")
    if not math.isfinite(w):
        raise DNWGraphError(f"line {lineno}: {name!r} must be finite (got {cell!r:.80})")
    return w


def _flag(lineno: int, cell: str, name: str) -> bool:
    text = cell.lower()
    if text not in _TRUE + _FALSE:
        raise DNWGraphError(f"line {lineno}: {name!r} must be true or false (got {cell!r:.80})")
    return text in _TRUE


def _role(marks: dict[int, tuple[bool, int]], node: int, on: bool, lineno: int, role: str) -> None:
    seen = marks.setdefault(node, (on, lineno))
    if seen[0] != on:
        raise DNWGraphError(
            f"line {lineno}: node {node} has {role}={str(on).lower()} but "
            f"{str(seen[0]).lower()} on line {seen[1]}"
        )


def _columns(data: Data) -> tuple[list[str], list[list[object]]]:
    src, dst = data.edge_index.tolist()
    header, columns = ["source", "target"], [src, dst]
    if data.edge_weight is not None:
        w = data.edge_weight.tolist()
        header += ["edge_weight", "weight"]
        columns += [[repr(x) for x in w], [repr(abs(x)) for x in w]]
    n = int(data.num_nodes)
    for name in ROLE_COLUMNS:
        end, role = name.split("_", 1)
        mask = data[role].tolist() if role in data else [False] * n
        header.append(name)
        columns.append([_text(mask[v]) for v in (src if end == "source" else dst)])
    names = list(data.module_names) if "module_names" in data else []
    if any(names):
        index = data.module_index.tolist()
        header.append("module")
        columns.append([names[index[u]] for u in src])
    if "selected" in data:
        header.append("selected")
        columns.append([_text(s) for s in data.selected.tolist()])
    return header, columns


def _text(flag: bool) -> str:
    return "true" if flag else "false"
