"""The file-format protocol, the registry of formats by suffix, and the checks every read shares.

A format turns a file into a wiring's :class:`~torch_geometric.data.Data` and back (the layout
of :mod:`dnwgraph.graph.convert`); :meth:`dnwgraph.Wiring.from_file` validates what it read, and
:func:`dnwgraph.save_wiring` hands it what to write.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch_geometric.data import Data

from dnwgraph._atomic import atomic_path
from dnwgraph._outputs import check_output_file
from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.graph._checks import MAX_NODES, check_int, check_unnamed_nodes
from dnwgraph.graph.convert import PLAIN_INT
from dnwgraph.registry import Registry
from dnwgraph.typing import PathLikeStr

__all__ = [
    "WiringFormat",
    "FORMATS",
    "register_format",
    "list_formats",
    "find_format",
    "read_data",
    "write_data",
    "node_id",
    "text_lines",
]


@runtime_checkable
class WiringFormat(Protocol):
    """A wiring file format: a reader and a writer, registered by suffix.

    ``read(path)`` returns a :class:`~torch_geometric.data.Data` holding at least
    ``edge_index [2, E]`` and, when the file says so, ``num_nodes``, ``input_mask [N]``,
    ``output_mask [N]`` (bool), ``edge_weight [E]``, ``acyclic`` and ``self_loops``; what it
    leaves out gets the defaults of :meth:`dnwgraph.Wiring.from_data`. A reader that infers
    ``num_nodes`` from the ids (one node per id up to the largest) adds ``named_nodes``, the
    number of distinct ids the file names: :func:`read_data` refuses a file that names far
    fewer nodes than that count (``1 60000000`` would be 60 million), unless the caller gives
    ``num_nodes``. It raises
    :class:`~dnwgraph.errors.DNWGraphError` for a malformed file (the path is prefixed for it).

    ``write(data, path)`` writes such a ``Data`` (as :func:`dnwgraph.to_data` makes it: the
    keys above, plus optionally ``e_id``, ``selected``, ``node_level``, ``module_index`` and
    ``module_names``) to ``path``, a temporary file renamed into place afterwards.

    Examples:
        >>> isinstance(find_format("w.csv"), WiringFormat)
        True
    """

    def read(self, path: Path) -> Data: ...

    def write(self, data: Data, path: Path) -> None: ...


#: Every wiring file format, keyed by its lower-case suffix (``".csv"``).
FORMATS: Registry[WiringFormat] = Registry("wiring file format")


def register_format(suffix: str, fmt: WiringFormat, *, replace: bool = False) -> WiringFormat:
    """Make ``fmt`` read and write the files ending in ``suffix`` (e.g. ``".tsv"``).

    Afterwards :meth:`dnwgraph.Wiring.from_file`, :func:`dnwgraph.read_wiring`,
    :func:`dnwgraph.save_wiring` and ``dnwgraph export`` accept the suffix.

    Raises:
        DNWGraphError: ``suffix`` does not start with a dot, is taken (unless ``replace``), or
            ``fmt`` lacks ``read``/``write``.
    """
    if not (isinstance(suffix, str) and suffix.startswith(".") and len(suffix) > 1):
        raise DNWGraphError(f"a format suffix starts with a dot, like '.tsv' (got {suffix!r})")
    if not isinstance(fmt, WiringFormat):
        raise DNWGraphTypeError(
            f"a wiring format needs methods read(path) and write(data, path) (got "
            f"{type(fmt).__name__})"
        )
    return FORMATS.register(suffix.lower(), fmt, replace=replace)


def list_formats() -> list[str]:
    """The suffixes of every registered format, sorted.

    Examples:
        >>> list_formats()
        ['.csv', '.edgelist', '.gexf', '.graphml', '.json', '.txt']
    """
    return FORMATS.list()


def find_format(path: PathLikeStr, action: str = "read") -> WiringFormat:
    """The format of ``path``, by its suffix (case-insensitive).

    Raises:
        DNWGraphError: an unknown suffix (the message lists the registered ones).
    """
    path = Path(path)
    fmt = FORMATS.find(path.suffix.lower())
    if fmt is None:
        raise DNWGraphError(
            f"cannot {action} a wiring {'from' if action == 'read' else 'to'} '{path}': unknown "
            f"extension '{path.suffix}' (supported: {', '.join(list_formats())})"
        )
    return fmt


def read_data(path: PathLikeStr, num_nodes: int | None = None) -> Data:
    """Read a wiring file into a ``Data`` by its format; ``num_nodes`` adds nodes the file does
    not name (their masks are ``False``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DNWGraphError: an unknown extension, a folder, FIFO, device or socket in place of a file,
            a malformed file (the message starts with the path), ``num_nodes`` below the
            nodes of the file, or (without ``num_nodes``) ids that leave more nodes unnamed
            than the file names, and over 1,000.
    """
    path = Path(path)
    fmt = find_format(path)
    _check_regular_file(path)
    with naming(path):
        data = fmt.read(path)
        if not isinstance(data, Data) or "edge_index" not in data:
            raise DNWGraphTypeError(
                f"the reader of '{path.suffix}' must return a Data with an 'edge_index' "
                f"(got {type(data).__name__})"
            )
        named = data.named_nodes if "named_nodes" in data else None
        if named is not None:
            del data.named_nodes
        if num_nodes is not None:
            _grow(data, check_int(num_nodes, "num_nodes", low=1))
        elif named is not None:
            check_unnamed_nodes(int(data.num_nodes), int(named))
    return data


def _check_regular_file(path: Path) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"wiring file not found: '{path}'") from None
    except OSError as err:
        raise DNWGraphError(f"{path}: cannot be read ({err.strerror})") from None
    if stat.S_ISREG(mode):
        return
    kinds = [
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    raise DNWGraphError(f"{path}: expected a wiring file (got {kind})")


def _grow(data: Data, num_nodes: int) -> None:
    known = int(data.num_nodes) if data.num_nodes is not None else 0
    if num_nodes < known:
        raise DNWGraphError(
            f"'num_nodes' must be at least the {known} nodes of the file (got {num_nodes})"
        )
    for key in ("input_mask", "output_mask"):
        if key in data:
            mask = torch.as_tensor(data[key])
            data[key] = torch.cat([mask, mask.new_zeros(num_nodes - mask.numel())])
    data.num_nodes = num_nodes


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """Prefix the file name to a check failure of what the file holds (a subclass such as
    :class:`~dnwgraph.CycleError` keeps its type and attributes)."""
    try:
        yield
    except DNWGraphError as err:
        if str(err).startswith(str(path)):
            raise
        if type(err) in (DNWGraphError, DNWGraphTypeError):
            raise type(err)(f"{path}: {err}") from None
        err.args = (f"{path}: {err}", *err.args[1:])  # its own constructor takes other arguments
        raise


def write_data(data: Data, path: PathLikeStr) -> Path:
    """Write a wiring's ``Data`` to ``path`` by its format, atomically (a temporary file in
    the same folder renamed over ``path``); the parent folder is created.

    Raises:
        DNWGraphError: an unknown extension (the message lists the registered ones), or a
            ``path`` that is a folder, ends with a separator or lies below a file.
    """
    path = check_output_file(path, "wiring file")
    fmt = find_format(path, "write")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fmt.write(data, tmp)
    return path


def node_id(text: str, lineno: int) -> int:
    """A node id written as text on line ``lineno``: a decimal integer (no ``+``, no leading
    zero, no ``_``; ``10.0`` is 10, as pandas writes an integer column holding a NaN), at least
    0 and below the node limit.

    Raises:
        DNWGraphError: anything else, naming the line.

    Examples:
        >>> node_id("12", 3), node_id("12.0", 3), node_id("-0.0", 3)
        (12, 12, 0)
    """
    if not PLAIN_INT.fullmatch(text):
        raise DNWGraphError(f"line {lineno}: node id {text[:40]!r} is not a plain integer")
    head = text.partition(".")[0]
    if head.startswith("-") and head != "-0":  # "-0" (a float column's "-0.0") is 0
        raise DNWGraphError(f"line {lineno}: node id {text} is negative: ids are positions 0..N-1")
    if len(head) > 12 or int(head) >= MAX_NODES:
        raise DNWGraphError(
            f"line {lineno}: node id {text[:40]} is too large: ids are positions 0..N-1 below "
            f"{MAX_NODES}"
        )
    return int(head)


def text_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file (a byte-order mark skipped), for the text readers.

    Raises:
        DNWGraphError: the file is not UTF-8 text (names the first bad byte).
    """
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise not_text(path, err) from None


def not_text(path: Path, err: UnicodeDecodeError) -> DNWGraphError:
    return DNWGraphError(
        f"not a UTF-8 text file (byte 0x{err.object[err.start]:02x} at offset {err.start}); "
        f"a {path.suffix or 'wiring'} file is text"
    )
