"""Every ``Examples:`` section of every dnwgraph module runs and prints what it says.

The modules are discovered, not listed, so a new module's examples run without a change
here.  One harness for the whole package (it replaces one per subpackage).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import dnwgraph

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
#: Modules whose examples build full-size networks (seconds each).
SLOW = {"dnwgraph.models.mobilenet"}
#: Command handlers (argparse in, exit code out): tests/test_cli.py runs them instead.
COMMANDS = {"dnwgraph.cli", "dnwgraph.analysis.commands", "dnwgraph.train.commands"}
#: Modules that need an optional extra to import their examples' dependencies.
EXTRAS = {"dnwgraph.models.continuous": "torchdiffeq"}


def _modules() -> list[str]:
    names = [
        m.name
        for m in pkgutil.walk_packages(dnwgraph.__path__, "dnwgraph.")
        if not m.name.endswith("__main__")  # runs the CLI on import
    ]
    return sorted(names)


MODULES = _modules()


def _param(name: str):
    return pytest.param(name, marks=[pytest.mark.slow] if name in SLOW else [], id=name)


@pytest.mark.parametrize("name", [_param(n) for n in MODULES])
def test_docstring_examples(name: str) -> None:
    if name in EXTRAS:
        pytest.importorskip(EXTRAS[name])
    # import_module, not attribute access: a package may re-export a function under the
    # module's name (``dnwgraph.models.sparsify``)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=FLAGS)
    assert result.failed == 0


def test_public_modules_have_examples() -> None:
    """Every module that defines a public name (a subpackage ``__all__`` entry) shows it in use."""
    without = []
    for name in MODULES:
        module = importlib.import_module(name)
        if name.rsplit(".", 1)[-1].startswith("_") or module.__name__ == "dnwgraph.typing":
            continue
        public = [
            v
            for k, v in vars(module).items()
            if not k.startswith("_") and getattr(v, "__module__", None) == name and callable(v)
        ]
        examples = sum(len(t.examples) for t in doctest.DocTestFinder().find(module, name))
        if public and not examples and name not in COMMANDS:
            without.append(name)
    assert len(MODULES) >= 40
    assert without == []
