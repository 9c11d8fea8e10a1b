"""DNW trains stably in a plain loop without gradient clipping (docs/stability.md).

The same short loop (SGD lr 0.1, momentum 0.9, weight decay 1e-4, no clipping, 2 % of the
candidates) collapses the wiring with the reference code's choices — the selected edges'
|w| explodes and most nodes lose every input — and leaves it intact with the defaults.
"""

import pytest
import torch

from dnwgraph import create_model
from dnwgraph.train import create_dataset
from dnwgraph.train.monitor import WiringMonitor

REFERENCE = {"fan_in": "candidates", "node_op_options": {"eps": 1e-5, "activation": "relu"}}
STEPS = 30


@pytest.fixture(scope="module")
def data():
    return create_dataset("mnist1d", num_samples=1500)


def plain_loop(preset, data, **kwargs):
    torch.manual_seed(0)
    model = create_model(preset, ratio=0.02, **kwargs)
    monitor = WiringMonitor(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    for step in range(STEPS):
        idx = torch.randint(0, len(data.train.y), (128,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(data.train.x[idx]), data.train.y[idx])
        opt.zero_grad()
        loss.backward()
        monitor.record(step, loss)
        opt.step()
    monitor.close()
    cols = monitor.columns()
    growth = max(cols["weight_selected"]) / cols["weight_selected"][0]
    hidden = model.num_nodes - model.input_nodes.numel()
    return cols, growth, cols["nodes_without_input"][-1] / hidden


@pytest.mark.parametrize(
    "preset, options",
    [
        ("mnist1d_static", {}),
        ("mnist1d_discrete", {}),
        ("mnist1d_continuous", {"solver": "euler", "step_size": 0.25}),
    ],
)
def test_defaults_keep_the_wiring_alive(data, preset, options):
    cols, growth, without_input = plain_loop(preset, data, **options)
    assert growth < 1.5  # the selected |w| keeps its scale
    assert without_input < 0.2
    assert cols["output_in_edges"][-1] >= 0.8 * cols["output_in_edges"][0]
    assert cols["loss"][-1] < cols["loss"][0]


@pytest.mark.parametrize("preset", ["mnist1d_static", "mnist1d_discrete"])
def test_reference_choices_collapse(data, preset):
    _, growth, without_input = plain_loop(preset, data, **REFERENCE)
    assert growth > 5.0
    assert without_input > 0.5
