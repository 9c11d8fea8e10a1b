"""Command-line interface: ``dnwgraph <command> ...``.

The parser is built from argparse alone and every handler is imported only when its command
runs, so ``dnwgraph --help`` answers without importing torch or torch_geometric.  Each
command is one ``_add_<name>`` function (its arguments) and one ``"module:function"`` handler
that takes the parsed ``argparse.Namespace`` and returns an exit code.

Exit codes: 0 done; 1 a training run stopped (it diverged, or a worker died); 2 a user error:
a bad argument, config, file, checkpoint or path (:class:`~dnwgraph.errors.DNWGraphError` or an
``OSError`` such as a missing or unwritable file), reported as one line on stderr.  Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import import_module

from dnwgraph._version import __version__
from dnwgraph.registry import Registry

#: Commands by name: (handler "module:function", one-line help, argument builder).
COMMANDS: Registry[tuple[str, str, Callable[[argparse.ArgumentParser], None]]] = Registry("command")


def command(name: str, handler: str, help: str) -> Callable:
    def wrap(add: Callable[[argparse.ArgumentParser], None]) -> Callable:
        COMMANDS.register(name, (handler, help, add))
        return add

    return wrap


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dnwgraph",
        description="Discovering Neural Wirings on PyTorch Geometric: learn the wiring of a "
        "network together with its weights.",
    )
    parser.add_argument("--version", action="version", version=f"dnwgraph {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text, add) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add(p)
    return parser


def error(message: str) -> int:
    """Print ``dnwgraph: error: MESSAGE`` (one line) to stderr; return exit code 2."""
    print(f"dnwgraph: error: {message}", file=sys.stderr)
    return 2


def _os_message(err: OSError) -> str:
    what = err.strerror or str(err) or type(err).__name__
    if err.filename is not None:
        what = f"{what}: {str(err.filename)!r}"
        if err.filename2 is not None:
            what += f" -> {str(err.filename2)!r}"
    return what


def main(argv: Sequence[str] | None = None) -> int:
    from dnwgraph.errors import DNWGraphError, one_line, warnings_as_lines

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module, func = COMMANDS.get(args.command)[0].split(":")
    try:
        with warnings_as_lines():
            handler = getattr(import_module(module), func)
            return int(handler(args) or 0)
    except (DNWGraphError, Warning) as err:  # a Warning: raised by -W error
        return error(one_line(err))
    except OSError as err:  # a path the user named: missing, unreadable, unwritable, full disk
        return error(one_line(OSError(_os_message(err))))


def positive_int(text: str) -> int:
    """argparse type: an int >= 1 (the message says what came)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (got {value})")
    return value


# ---------------------------------------------------------------------------- commands


@command("train", "dnwgraph.train.commands:train_command", "train a model from a YAML config")
def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="YAML config (see examples/configs/)")
    p.add_argument(
        "--set",
        metavar="KEY=VALUE",
        nargs="+",
        action="extend",
        default=[],
        help="override config values, e.g. --set optim.lr=0.05 train.epochs=10",
    )
    p.add_argument("--out", metavar="DIR", help="run directory (default: runs/<config name>)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    p.add_argument(
        "--nproc",
        metavar="N",
        type=positive_int,
        default=1,
        help="train on N processes of this machine with DistributedDataParallel (gloo on CPU, "
        "nccl on CUDA); data.batch_size stays the global batch. For several machines use "
        "torchrun ... -m dnwgraph train (default: 1)",
    )


@command("demo", "dnwgraph.demo:demo_command", "DNW vs a random graph on MNIST-1D")
def _add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="DIR", default="runs/demo", help="(default: runs/demo)")
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="epochs per run (default: sized to finish in a few minutes on 2 CPU cores)",
    )
    p.add_argument("--seed", type=int, default=0, help="(default: 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0 (got {text!r})")
    return value


_SOURCE_HELP = (
    "a run folder, its checkpoint (.pt), a save_pretrained folder, a wiring snapshot (.pt) or a "
    "wiring file"
)


@command("export", "dnwgraph.analysis.commands:export", "write a learned wiring to a graph file")
def _add_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="RUN_OR_CHECKPOINT", help=_SOURCE_HELP)
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        required=True,
        help="output file; the format follows the extension: .graphml, .gexf, .json "
        "(node-link), .csv (edge list)",
    )
    p.add_argument(
        "--all-candidates",
        action="store_true",
        help="write every candidate edge with a 'selected' flag (default: selected edges only)",
    )


@command("analyze", "dnwgraph.analysis.commands:analyze", "measure a learned wiring, write report")
def _add_analyze(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="RUN_OR_CHECKPOINT", help=_SOURCE_HELP)
    p.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="report folder (default: RUN/analysis, or beside a file or save_pretrained folder)",
    )
    p.add_argument(
        "--num-random",
        type=_non_negative_int,
        default=3,
        help="random wirings with equal edges for the baseline, 0 to skip (default: 3)",
    )
    p.add_argument(
        "--input-shape", metavar="C,L", help="one input sample's shape, to count MACs (e.g. 1,40)"
    )
    p.add_argument("--no-figures", action="store_true", help="write the report without figures")


@command("plot", "dnwgraph.analysis.commands:plot", "draw a learned wiring and its training")
def _add_plot(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="RUN_OR_CHECKPOINT", help=_SOURCE_HELP)
    p.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="figure folder (default: RUN/figures, or beside a save_pretrained folder)",
    )


if __name__ == "__main__":
    sys.exit(main())
