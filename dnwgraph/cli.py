"""Command-line interface: ``dnwgraph <command> ...``.

The parser is built from argparse alone and every handler is imported only when its command
runs, so ``dnwgraph --help`` answers without importing torch or torch_geometric.  Each
command is one ``_add_<name>`` function (its arguments) and one ``"module:function"`` handler
that takes the parsed ``argparse.Namespace`` and returns an exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import import_module

# name -> (handler "module:function", one-line help, argument builder)
_COMMANDS: dict[str, tuple[str, str, Callable[[argparse.ArgumentParser], None]]] = {}


def command(name: str, handler: str, help: str) -> Callable:
    def wrap(add: Callable[[argparse.ArgumentParser], None]) -> Callable:
        _COMMANDS[name] = (handler, help, add)
        return add

    return wrap


def build_parser() -> argparse.ArgumentParser:
    from dnwgraph import __version__

    parser = argparse.ArgumentParser(
        prog="dnwgraph",
        description="Discovering Neural Wirings on PyTorch Geometric: learn the wiring of a "
        "network together with its weights.",
    )
    parser.add_argument("--version", action="version", version=f"dnwgraph {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text, add) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module, func = _COMMANDS[args.command][0].split(":")
    handler = getattr(import_module(module), func)
    return int(handler(args) or 0)


# ---------------------------------------------------------------------------- commands


if __name__ == "__main__":
    sys.exit(main())
