"""The user-written wiring method of examples/sparse_momentum.py: public names only, at most
60 lines, and it trains on every model with a wiring and every implementation."""

from __future__ import annotations

import ast
import inspect
import runpy
from pathlib import Path

import pytest
import torch

from dnwgraph import WiringConv
from dnwgraph.models import create_model, list_models
from dnwgraph.models.registry import MODELS
from dnwgraph.select import list_selections

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sparse_momentum.py"
# the package's presets (models that tests register under "_..." names are left out)
WIRED = [
    n
    for n in list_models()
    if not n.startswith("_") and "selection" in inspect.signature(MODELS.get(n)).parameters
]


@pytest.fixture(scope="module")
def example() -> dict:
    if "sparse_momentum" in list_selections():  # registered once per process
        pytest.skip("sparse_momentum registered by another test module")
    return runpy.run_path(str(EXAMPLE))


def test_short_and_public_names_only():
    source = EXAMPLE.read_text()
    assert len(source.splitlines()) <= 60
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module.startswith("dnwgraph"):
            assert not any(part.startswith("_") for part in node.module.split("."))
            assert not any(alias.name.startswith("_") for alias in node.names)


def test_the_docs_quote_the_example():
    page = (EXAMPLE.parents[1] / "docs" / "methods.md").read_text()
    quoted = page.split("## Writing your own", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    assert quoted.strip() and quoted in EXAMPLE.read_text()


def test_the_example_runs_and_moves_the_wiring(example):
    assert 0.0 < example["main"](steps=60) < 1.0


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["sparse", "dense", "scatter"])
@pytest.mark.parametrize("name", WIRED)
def test_every_model_and_impl(example, name, impl):
    options = {"input_size": 32} if name.startswith("mobilenet") else {}
    torch.manual_seed(0)
    model = create_model(name, selection="sparse_momentum", impl=impl, frequency=1, **options)
    x = torch.randn(2, 40) if name.startswith("mnist1d") else torch.randn(2, 3, 32, 32)
    convs = [m for m in model.modules() if isinstance(m, WiringConv)]
    first = [conv.active_mask().clone() for conv in convs]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        model(x).logsumexp(1).sum().backward()
        opt.step()
    moved = 0
    for conv, before in zip(convs, first, strict=True):
        mask = conv.active_mask()
        assert int(mask.sum()) == conv.k and conv.selection.name == "sparse_momentum"
        assert float(conv.selection.momentum.abs().sum()) > 0  # gradients were captured
        moved += int((mask & ~before).sum())
    assert moved > 0
