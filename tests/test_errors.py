"""One error type for every user mistake: a ValueError the CLI reports in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dnwgraph
from dnwgraph.errors import DNWGraphError, DNWGraphTypeError, MissingDependencyError, one_line


def test_the_user_error_type_is_public_and_a_value_error() -> None:
    assert "DNWGraphError" in dnwgraph.__all__
    assert dnwgraph.DNWGraphError is DNWGraphError
    assert issubclass(DNWGraphError, ValueError)
    assert issubclass(DNWGraphTypeError, DNWGraphError) and issubclass(DNWGraphTypeError, TypeError)
    assert issubclass(MissingDependencyError, ImportError)


def test_every_package_error_is_a_dnwgraph_error() -> None:
    from dnwgraph import CycleError
    from dnwgraph.train import CheckpointError, ConfigError, DataError, RunExistsError

    for cls in (CycleError, CheckpointError, ConfigError, DataError, RunExistsError):
        assert issubclass(cls, DNWGraphError), cls
    assert issubclass(RunExistsError, FileExistsError)  # kept for older callers


def test_importing_the_error_type_does_not_import_torch() -> None:
    code = "import dnwgraph.errors, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    ("message", "expected"),
    [("a\nb\n\n  c ", "a | b | c"), ("one", "one"), ("", "ValueError")],
)
def test_one_line(message: str, expected: str) -> None:
    assert one_line(ValueError(message)) == expected


def test_warnings_as_lines_prints_each_once_on_one_line(capsys) -> None:
    import warnings

    from dnwgraph.errors import warnings_as_lines

    before = warnings.showwarning
    with warnings_as_lines():
        for _ in range(2):  # the same warning from two places, as two loads of one model
            warnings.warn("saved by\na newer one", UserWarning, stacklevel=1)
            warnings.warn("saved by\na newer one", UserWarning, stacklevel=2)
        warnings.warn("another", DeprecationWarning, stacklevel=1)
    assert capsys.readouterr().err.splitlines() == [
        "dnwgraph: warning: saved by | a newer one",
        "dnwgraph: warning: another",
    ]
    with warnings_as_lines(quiet=True):
        warnings.warn("not shown", UserWarning, stacklevel=1)
    assert capsys.readouterr().err == ""
    assert warnings.showwarning is before


def test_every_subpackage_is_an_attribute_after_import_dnwgraph_alone() -> None:
    """Before: `import dnwgraph; dnwgraph.models.push_to_hub` (as docs/models.md writes it)
    raised AttributeError unless a public name had been looked up first."""
    from pathlib import Path

    import dnwgraph

    names = sorted(p.parent.name for p in Path(dnwgraph.__file__).parent.glob("*/__init__.py"))
    code = (
        "import dnwgraph, sys\n"
        f"for name in {names!r}:\n"
        "    assert getattr(dnwgraph, name) is sys.modules['dnwgraph.' + name], name\n"
        "assert dnwgraph.models.push_to_hub and dnwgraph.graph.read_wiring\n"
        "try:\n"
        "    dnwgraph.nope\n"
        "except AttributeError as err:\n"
        "    assert str(err) == \"module 'dnwgraph' has no attribute 'nope'\"\n"
        "else:\n"
        "    raise SystemExit('no error')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
