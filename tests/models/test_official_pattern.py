"""The presets against the official code's computation pattern (benchmarks/official_pattern.py):
an N x N weight with a sort-based top-k over all N^2 entries, per-block dense 1x1 convolutions
in [B, C, *S] layout.  Same parameters, same logits and edge gradients: an independent oracle
of the whole model (and the proof that the benchmark compares like with like)."""

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dnwgraph import create_model

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from official_pattern import edge_grad, official_like  # noqa: E402

CASES = [
    "mnist1d_static",
    "mnist1d_discrete",
    pytest.param("tiny_static", marks=pytest.mark.slow),
    pytest.param("tiny_discrete", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name", CASES)
def test_preset_equals_official_pattern(name):
    torch.manual_seed(0)
    ours = create_model(name).double()
    base = official_like(ours)
    x = torch.randn(2, *ours.input_shape, dtype=torch.float64)
    y = torch.tensor([1, 7])
    out, ref = ours(x), base(x)
    torch.testing.assert_close(out, ref)
    F.cross_entropy(out, y).backward()
    F.cross_entropy(ref, y).backward()
    torch.testing.assert_close(ours.conv.edge_weight.grad, edge_grad(base, ours))
    ours.eval(), base.eval()
    with torch.no_grad():  # the in-place inference path too
        torch.testing.assert_close(ours(x), base(x))
