"""Strict JSON for the files dnwgraph reads (node-link wirings, pretrained folders).

:func:`json.loads` accepts what no JSON writer means: a key given twice in one object (the last
one silently wins), ``NaN`` and ``Infinity``, and nesting deep enough to exhaust the
interpreter's stack.  :func:`loads` refuses each with one :class:`DNWGraphError` line; callers
add the file's name.

Private: used by the readers in :mod:`dnwgraph.graph.formats` and :mod:`dnwgraph.models`.
"""

from __future__ import annotations

import json
from typing import Any

from dnwgraph.errors import DNWGraphError

__all__ = ["loads", "MAX_DEPTH"]

#: The deepest nesting accepted (every file dnwgraph writes is at most 4 deep).
MAX_DEPTH = 64


def loads(text: str) -> Any:
    """Parse ``text`` as strict JSON.

    Args:
        text: the document.

    Returns:
        The parsed value.

    Raises:
        DNWGraphError: invalid JSON, a duplicate key, ``NaN``/``Infinity``, or nesting deeper
            than :data:`MAX_DEPTH`.

    Example:
        >>> loads('{"a": [1, 2]}')
        {'a': [1, 2]}
    """
    if depth(text) > MAX_DEPTH:
        raise DNWGraphError(f"nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, object_pairs_hook=_unique, parse_constant=_no_constant)
    except DNWGraphError:
        raise
    except ValueError as err:  # JSONDecodeError, or an integer of thousands of digits
        raise DNWGraphError(f"not valid JSON ({str(err)[:200]})") from None


def depth(text: str) -> int:
    """The deepest nesting of ``[`` and ``{`` in a JSON text, outside strings."""
    level = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            level += 1
            deepest = max(deepest, level)
        elif ch in "]}":
            level -= 1
    return deepest


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise DNWGraphError(f"the key {key!r} appears twice in one JSON object")
        obj[key] = value
    return obj


def _no_constant(name: str) -> Any:
    raise DNWGraphError(f"{name} is not a JSON number")
