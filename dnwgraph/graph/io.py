"""Reading (and minimal writing) of wiring files, used by :meth:`Wiring.from_file`.

Formats, chosen by extension:

* ``.csv`` — one edge per row, ``source,target``; an optional header row naming the columns
  (``source``/``target``, any order; a ``signed_weight`` column, else a ``weight`` column,
  becomes ``edge_weight``; other columns are ignored); blank lines and lines starting with ``#``
  are skipped. Isolated nodes need ``num_nodes=...``.
* ``.json`` — either ``{"num_nodes": N, "edges": [[u, v], ...], "input_nodes": [...],
  "output_nodes": [...], "acyclic": true, "edge_weight": [...]}`` (all keys but ``edges``
  optional) or networkx node-link JSON (``{"nodes": [{"id": ...}, ...], "edges": [...]}``, or
  the legacy ``"links"`` key).
* ``.graphml`` / ``.gexf`` — through networkx; node ids that all look like integers are read as
  integers, so ``"10"`` sorts after ``"9"`` and the ids of the file are kept.

Graph files keep the learned weights: the edge attribute ``signed_weight`` (else ``weight``)
becomes :attr:`Wiring.edge_weight` (see :meth:`Wiring.from_networkx`).
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.typing import PathLikeStr

if TYPE_CHECKING:
    import networkx as nx

    from dnwgraph.graph.wiring import Wiring


def read_file(cls: type[Wiring], path: PathLikeStr, **kwargs: Any) -> Wiring:
    """Read a wiring file into ``cls`` (see :func:`dnwgraph.graph.read_wiring`).

    ``cls`` is the class to build (:class:`Wiring` or a subclass): this module reads files and
    leaves the class to its caller, so that ``wiring.py`` may use it without an import cycle.

    Raises:
        FileNotFoundError: ``path`` does not exist (the message names it).
        ValueError: unknown extension (lists the supported ones), malformed content (CSV errors
            name the line number and its text), or any check of the constructor.
    """
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DNWGraphError(
            f"cannot read a wiring from '{path}': unknown extension '{path.suffix}' "
            f"(supported: {', '.join(sorted(READERS))})"
        )
    if not path.is_file():
        raise FileNotFoundError(f"wiring file not found: '{path}'")
    return reader(cls, path, **kwargs)


def read_csv(cls: type[Wiring], path: Path, **kwargs: Any) -> Wiring:
    """Read a ``source,target`` edge list (see the module docstring).

    A UTF-8 byte-order mark is skipped; a file separated by ``;`` or tabs is named as such.
    """
    cols = (0, 1)
    weight_col: int | None = None
    edges: list[tuple[int, int]] = []
    weights: list[float] = []
    header_seen = False
    with _open_text(path) as f:
        try:
            for lineno, row in enumerate(csv.reader(f), start=1):
                if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                    continue
                cells = [c.strip() for c in row]
                if len(cells) == 1:
                    _wrong_separator(path, lineno, cells[0])
                if not edges and not header_seen and not _is_int(cells[0]):
                    names = [c.lower() for c in cells]
                    if "source" not in names or "target" not in names:
                        raise DNWGraphError(
                            f"{path} line {lineno}: a header must name 'source' and 'target' "
                            f"columns (got {','.join(row)!r})"
                        )
                    cols = (names.index("source"), names.index("target"))
                    for key in ("signed_weight", "weight"):
                        if key in names:
                            weight_col = names.index(key)
                            break
                    header_seen = True
                    continue
                try:
                    edges.append((int(cells[cols[0]]), int(cells[cols[1]])))
                except (ValueError, IndexError):
                    raise DNWGraphError(
                        f"{path} line {lineno}: expected two integer node ids 'source,target' "
                        f"(got {','.join(row)!r})"
                    ) from None
                if weight_col is not None:
                    try:
                        weights.append(float(cells[weight_col]))
                    except (ValueError, IndexError):
                        raise DNWGraphError(
                            f"{path} line {lineno}: expected a number in column "
                            f"{weight_col + 1} (the weight) (got {','.join(row)!r})"
                        ) from None
        except csv.Error as err:
            raise DNWGraphError(f"{path}: not a CSV edge list ({err})") from None
        except UnicodeDecodeError as err:
            raise _not_text(path, err) from None
    if not edges:
        raise DNWGraphError(f"{path}: no edges found; a wiring needs at least one candidate edge")
    if weight_col is not None:
        kwargs.setdefault("edge_weight", weights)
    with _naming(path):
        return cls(edges, **kwargs)


def _open_text(path: Path) -> Any:
    # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not part of the first cell
    return open(path, newline="", encoding="utf-8-sig")


def _not_text(path: Path, err: UnicodeDecodeError) -> DNWGraphError:
    return DNWGraphError(
        f"{path}: not a UTF-8 text file (byte 0x{err.object[err.start]:02x} at offset "
        f"{err.start}); a {path.suffix or 'wiring'} file is text"
    )


def _wrong_separator(path: Path, lineno: int, cell: str) -> None:
    for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
        if sep in cell:
            raise DNWGraphError(
                f"{path} line {lineno}: the columns are separated by {name} ({cell!r}); a "
                "wiring CSV is comma-separated: 'source,target'"
            )
    if len(cell.split()) == 2:
        raise DNWGraphError(
            f"{path} line {lineno}: the columns are separated by spaces ({cell!r}); a "
            "wiring CSV is comma-separated: 'source,target'"
        )


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def read_json(cls: type[Wiring], path: Path, **kwargs: Any) -> Wiring:
    """Read the dnwgraph JSON document or networkx node-link JSON (see the module docstring)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as err:
        raise _not_text(path, err) from None
    except json.JSONDecodeError as err:
        raise DNWGraphError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(doc, dict):
        raise DNWGraphError(f"{path}: expected a JSON object (got {type(doc).__name__})")
    if "nodes" in doc:
        import networkx as nx

        links = "links" if "links" in doc else "edges"
        try:
            g = nx.node_link_graph(doc, edges=links)
        except (KeyError, TypeError, nx.NetworkXError) as err:
            raise DNWGraphError(f"{path}: malformed node-link JSON ({err!r})") from None
        return _from_graph(cls, g, path, kwargs)
    if "edges" not in doc:
        raise DNWGraphError(
            f"{path}: expected a key 'edges' (dnwgraph format) or 'nodes' (node-link format) "
            f"(got keys {sorted(doc)})"
        )
    for key in ("num_nodes", "input_nodes", "output_nodes", "acyclic", "self_loops", "edge_weight"):
        if key in doc:
            kwargs.setdefault(key, doc[key])
    edges = doc["edges"]
    if not isinstance(edges, list):
        raise DNWGraphError(f"{path}: 'edges' must be a list of [source, target] pairs")
    with _naming(path):
        return cls([tuple(e) if isinstance(e, list) else e for e in edges], **kwargs)


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Prefix the file name to a plain check failure of what the file holds (a CycleError
    keeps its type and its own message)."""
    try:
        yield
    except (DNWGraphError, TypeError) as err:
        if type(err) not in (DNWGraphError, DNWGraphTypeError, TypeError):
            raise
        raise DNWGraphError(f"{path}: {err}") from None


def read_graphml(cls: type[Wiring], path: Path, **kwargs: Any) -> Wiring:
    """Read GraphML through networkx."""
    import networkx as nx

    g = _int_labels(_parse_xml(nx.read_graphml, path, "GraphML"))
    return _from_graph(cls, g, path, kwargs)


def read_gexf(cls: type[Wiring], path: Path, **kwargs: Any) -> Wiring:
    """Read GEXF through networkx."""
    import networkx as nx

    return _from_graph(cls, _int_labels(_parse_xml(nx.read_gexf, path, "GEXF")), path, kwargs)


def _parse_xml(read: Callable[[Path], nx.Graph], path: Path, what: str) -> nx.Graph:
    """Run a networkx XML reader; a malformed document becomes a ``ValueError`` naming it."""
    import xml.etree.ElementTree as ET

    import networkx as nx

    try:
        return read(path)
    except (ET.ParseError, nx.NetworkXError, KeyError, TypeError, ValueError) as err:
        raise DNWGraphError(f"{path}: malformed {what} ({type(err).__name__}: {err})") from None


def _int_labels(g: nx.Graph) -> nx.Graph:
    import networkx as nx

    if all(isinstance(v, str) and _is_int(v) for v in g.nodes):
        g = nx.relabel_nodes(g, {v: int(v) for v in g.nodes})
    return g


def _from_graph(cls: type[Wiring], g: nx.Graph, path: Path, kwargs: dict[str, Any]) -> Wiring:
    if "num_nodes" in kwargs:
        raise DNWGraphError(f"{path}: 'num_nodes' is given by the graph's nodes; do not pass it")
    return cls.from_networkx(g, **kwargs)


READERS: dict[str, Callable[..., Wiring]] = {
    ".csv": read_csv,
    ".json": read_json,
    ".graphml": read_graphml,
    ".gexf": read_gexf,
}


def write_edge_list_csv(wiring: Wiring, path: PathLikeStr) -> None:
    """Write ``source,target`` rows with a header, in edge order (inverse of :func:`read_csv`).

    A wiring with ``edge_weight`` adds the columns ``weight`` (:math:`|w|`) and
    ``signed_weight`` (:math:`w`).

    Examples:
        >>> import os, tempfile
        >>> from dnwgraph import Wiring
        >>> path = os.path.join(tempfile.mkdtemp(), "edges.csv")
        >>> write_edge_list_csv(Wiring([(0, 1), (1, 2)]), path)
        >>> print(open(path).read().strip())
        source,target
        0,1
        1,2
    """
    rows = wiring.edge_index.t().tolist()
    header = ["source", "target"]
    if wiring.edge_weight is not None:
        header += ["weight", "signed_weight"]
        weights = wiring.edge_weight.tolist()
        rows = [[u, v, repr(abs(w)), repr(w)] for (u, v), w in zip(rows, weights, strict=True)]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def write_json(wiring: Wiring, path: PathLikeStr) -> None:
    """Write the dnwgraph JSON document (inverse of :func:`read_json`).

    Examples:
        >>> import os, tempfile
        >>> from dnwgraph import Wiring
        >>> path = os.path.join(tempfile.mkdtemp(), "wiring.json")
        >>> write_json(Wiring([(0, 1), (1, 2)]), path)
        >>> Wiring.from_file(path).edge_index.tolist()
        [[0, 1], [1, 2]]
    """
    doc = {
        "num_nodes": wiring.num_nodes,
        "edges": wiring.edge_index.t().tolist(),
        "input_nodes": wiring.input_nodes.tolist(),
        "output_nodes": wiring.output_nodes.tolist(),
        "acyclic": wiring.acyclic,
        "self_loops": wiring.self_loops,
    }
    if wiring.edge_weight is not None:
        doc["edge_weight"] = wiring.edge_weight.tolist()
    Path(path).write_text(json.dumps(doc), encoding="utf-8")
