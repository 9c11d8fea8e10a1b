"""Config files: the one YAML reader and writer of a run's ``config.yaml``.

A run's ``config.yaml`` is the resolved training config, a plain nested mapping; the configs
given to ``dnwgraph train --config FILE`` are the same format, so they are read here too.
:class:`~dnwgraph.runs.Run` reads and writes a run's file with :func:`read_config_file` and
:func:`write_config_file`; :mod:`dnwgraph.train.config` reads the user's files with
:func:`read_config_file` and checks their keys and values (the schema lives there: this
module deals in plain dicts and imports nothing of training).

Examples:
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "config.yaml"
    >>> write_config_file(path, {"optim": {"lr": 0.1}, "train": {"epochs": 3}})
    >>> read_config_file(path)
    {'optim': {'lr': 0.1}, 'train': {'epochs': 3}}
    >>> _ = path.write_text("- 1\\n")
    >>> read_config_file(path, "run config")
    Traceback (most recent call last):
    ...
    dnwgraph.errors.DNWGraphError: run config '...config.yaml' must hold a mapping ... (got list)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dnwgraph._atomic import atomic_write_bytes
from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.typing import PathLikeStr

__all__ = ["parse_yaml", "read_config_file", "write_config_file"]

#: A float as YAML 1.2 writes it: PyYAML follows YAML 1.1, whose floats need a dot, so it reads
#: ``1e6`` or ``5e-4`` as strings; with this resolver they are numbers.
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)[eE][-+]?[0-9]+
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


def _unique_key_loader(name: str) -> type:
    """A ``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the
    last silently)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False):
        loader.flatten_mapping(node)
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key; construct_mapping reports it
                continue
            if not duplicate:
                seen[key] = line
            else:
                first = seen[key]
                raise DNWGraphError(
                    f"duplicate key {key!r} on lines {first} and {line} of {name} "
                    "(each key may appear once per section)"
                )
        return loader.construct_mapping(node, deep=deep)

    UniqueKeyLoader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping
    )
    UniqueKeyLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
    return UniqueKeyLoader


def parse_yaml(text: str, name: str = "<string>") -> Any:
    """``yaml.safe_load`` that refuses duplicate keys and reads ``1e6`` as a number (YAML 1.2
    floats; PyYAML alone reads it as a string).

    Raises:
        DNWGraphError: a key appears twice in one mapping (the message names both lines); the
            aliases (``*name``) expand the document beyond :data:`MAX_VALUES` values, or make
            it contain itself.
        yaml.YAMLError: malformed YAML.

    Examples:
        >>> parse_yaml("optim: {lr: 0.1, weight_decay: 5e-4}")
        {'optim': {'lr': 0.1, 'weight_decay': 0.0005}}
        >>> parse_yaml("lr: 0.1\\nlr: 0.2\\n", "c.yaml")
        Traceback (most recent call last):
        ...
        dnwgraph.errors.DNWGraphError: duplicate key 'lr' on lines 1 and 2 of c.yaml ...
    """
    import yaml

    data = yaml.load(text, Loader=_unique_key_loader(name))  # noqa: S506 - a SafeLoader subclass
    _check_expanded_size(data, name)
    return data


#: The most values a config may hold once its aliases are expanded (a real one holds hundreds;
#: nested aliases, ``b: [*a, *a, ...]`` nine levels deep, make a few lines a billion values,
#: which any code that walks the config, printing it in an error message say, never finishes).
MAX_VALUES = 100_000


def _check_expanded_size(data: Any, name: str) -> None:
    sizes: dict[int, int] = {}  # id of a container -> its expanded size (aliases share objects)
    open_: set[int] = set()

    def size(obj: Any) -> int:
        if not isinstance(obj, (dict, list)):
            return 1
        key = id(obj)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise DNWGraphError(f"{name} contains itself through a YAML alias (*name)")
        open_.add(key)
        items = [*obj.keys(), *obj.values()] if isinstance(obj, dict) else obj
        total = 1
        for item in items:
            total += size(item)
            if total > MAX_VALUES:
                raise DNWGraphError(
                    f"{name} holds over {MAX_VALUES:,} values once its YAML aliases (*name) "
                    "are expanded; write the values out, or use fewer aliases"
                )
        open_.discard(key)
        sizes[key] = total
        return total

    try:
        size(data)
    except RecursionError:
        raise DNWGraphError(f"{name} is nested too deeply to be a config") from None


def read_config_file(path: PathLikeStr, what: str = "config file") -> dict[str, Any]:
    """The mapping a YAML config file holds (``{}`` for an empty file), unchecked.

    Args:
        path (path): the file.
        what (str, optional): how the messages name the file. (default: ``"config file"``)

    Raises:
        DNWGraphError: a missing file, one that is not UTF-8 text or not valid YAML, a key
            given twice, or a document that is not a mapping (each names the file).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DNWGraphError(f"{what} {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DNWGraphError(
            f"{what} {str(path)!r} is not UTF-8 text (byte {err.start}); a config is a YAML file"
        ) from None
    except OSError as err:
        raise DNWGraphError(f"{what} {str(path)!r} cannot be read ({err.strerror})") from None
    try:
        raw = parse_yaml(text, str(path))
    except yaml.YAMLError as err:
        detail = " ".join(str(err).split())
        raise DNWGraphError(f"{what} {str(path)!r} is not valid YAML: {detail}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise DNWGraphError(
            f"{what} {str(path)!r} must hold a mapping of sections (got {type(raw).__name__})"
        )
    return raw


def write_config_file(path: PathLikeStr, config: Mapping[str, Any]) -> None:
    """Write ``config`` (a nested dict of plain values: dicts, lists, numbers, strings,
    ``None``) as YAML, atomically, keys in their order.

    Raises:
        TypeError: ``config`` is not a mapping.
    """
    import yaml

    if not isinstance(config, Mapping):
        raise DNWGraphTypeError(f"a config is a mapping of sections (got {type(config).__name__})")
    atomic_write_bytes(path, yaml.safe_dump(dict(config), sort_keys=False).encode())
