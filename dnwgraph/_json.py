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
    except _Constant as err:
        raise DNWGraphError(
            f"{_position(text, err.name)}: {err.name} is not a JSON number (write the value, or "
            "leave the key out)"
        ) from None
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


class _Constant(DNWGraphError):
    """``NaN``, ``Infinity`` or ``-Infinity`` met by the parser (which does not say where)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _no_constant(name: str) -> Any:
    raise _Constant(name)


def _position(text: str, token: str) -> str:
    """``line L column C`` of the first ``token`` outside strings (as the parser's messages)."""
    in_string = escaped = False
    for i, ch in enumerate(text):
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif text.startswith(token, i):
            line, start = text.count("\n", 0, i) + 1, text.rfind("\n", 0, i) + 1
            return f"line {line} column {i - start + 1}"
    return "somewhere"
