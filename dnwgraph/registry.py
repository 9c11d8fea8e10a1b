"""One generic registry: names to things (classes, factories, handlers), with one-line errors.

Node ops, selection strategies, models, datasets and CLI commands are each a
:class:`Registry` (timm keeps all of its models in one ``_registry.py`` the same way).  The
module imports nothing heavier than the standard library, so the CLI can list its commands
without importing torch.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Hashable, Iterator
from typing import Any, Generic, TypeVar, overload

from dnwgraph.errors import DNWGraphError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind, registered once each.

    Keys are names (``str``) except for the MAC/parameter counters, which are keyed by the
    module class they count (messages name it by ``__qualname__``).

    Args:
        kind (str): what the entries are, for messages (``"model"``, ``"node op"``, ...).
        error (type): the exception an unknown or repeated key raises (a
            :class:`~dnwgraph.errors.DNWGraphError` subclass). (default: ``DNWGraphError``)

    Examples:
        >>> shapes = Registry[type]("shape")
        >>> @shapes.register("square")
        ... class Square:
        ...     def __init__(self, side=1):
        ...         self.side = side
        >>> shapes.list(), shapes.create("square", side=2).side
        (['square'], 2)
        >>> shapes.get("circle")
        Traceback (most recent call last):
        ...
        dnwgraph.errors.DNWGraphError: unknown shape 'circle'; choose one of ['square']
    """

    def __init__(self, kind: str, error: type[DNWGraphError] = DNWGraphError) -> None:
        self.kind = kind
        self.error = error
        self._entries: dict[Hashable, T] = {}

    @overload
    def register(self, name: Hashable, *, replace: bool = False) -> Callable[[T], T]: ...

    @overload
    def register(self, name: Hashable, value: T, *, replace: bool = False) -> T: ...

    def register(self, name: Hashable, value: Any = None, *, replace: bool = False) -> Any:
        """Register ``value`` under ``name``; without ``value``, a decorator that does.

        Raises:
            ValueError: ``name`` is already registered (unless ``replace``).
        """

        def add(v: T) -> T:
            if name in self._entries and not replace:
                raise self.error(f"{self.kind} {_label(name)!r} is already registered")
            self._entries[name] = v
            return v

        return add if value is None else add(value)

    def get(self, name: Hashable) -> T:
        """The entry registered as ``name``.

        Raises:
            ValueError: an unknown name (the message lists the registered ones and the
                closest, if one is close).
        """
        try:
            return self._entries[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name
            names = self.list()
            close = _close_match(name, names) if isinstance(name, str) else []
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise self.error(f"unknown {self.kind} {name!r}; choose one of {names}{hint}") from None

    def find(self, name: Hashable) -> T | None:
        """The entry registered as ``name``, or ``None``."""
        try:
            return self._entries.get(name)
        except TypeError:
            return None

    def list(self, pattern: str | None = None) -> list[str]:
        """Sorted names, optionally filtered by a glob ``pattern``."""
        names = sorted(_label(k) for k in self._entries)
        return names if pattern is None else [n for n in names if fnmatch.fnmatch(n, pattern)]

    def create(self, name: Hashable, /, *args: Any, **kwargs: Any) -> Any:
        """Call the entry registered as ``name`` (a class or a factory) with the arguments."""
        return self.get(name)(*args, **kwargs)  # type: ignore[operator]

    def items(self) -> list[tuple[Hashable, T]]:
        """``(name, entry)`` pairs in registration order."""
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._entries
        except TypeError:
            return False

    def __iter__(self) -> Iterator[Hashable]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.list()})"


def _label(key: Hashable) -> str:
    return key.__qualname__ if isinstance(key, type) else str(key)


def _close_match(name: str, names: list) -> list:
    """The registered name closest to ``name`` (letter case ignored: ``"RigL"`` finds
    ``"rigl"``), as a list of at most one."""
    by_lower = {str(n).lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
    return [by_lower[c] for c in close]
