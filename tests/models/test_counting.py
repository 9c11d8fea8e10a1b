import pytest
import torch
from torch import nn

from dnwgraph import (
    StaticNeuralGraph,
    Wiring,
    WiringConv,
    WiringSpec,
    block_dag,
    count_macs,
    count_params,
)
from dnwgraph.models import Counter, create_model, register_counter


def test_wiring_conv_counts_selected_edges_only():
    wiring = block_dag([3, 4, 2])  # 26 candidates
    for k in (1, 5, 26):
        conv = WiringConv(wiring, ratio=k)
        assert count_params(conv) == k
    conv = WiringConv(wiring, ratio=5)
    x = torch.randn(9, 4, 7)

    # count_macs divides by dim 0 of the shape it is given; for a bare WiringConv that is
    # the node dimension, so count through a wrapper that is batch-first
    class BatchFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x):
            return self.conv(x.transpose(0, 1))

    assert count_macs(BatchFirst(), (4, 9, 7)) == 5 * 7
    assert conv(x).shape == x.shape


def test_leaf_modules_by_hand():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 5 * 5, 2),
    )
    assert count_params(model) == sum(p.numel() for p in model.parameters())
    conv = 4 * 5 * 5 * (3 * 9 + 1)
    assert count_macs(model, (2, 3, 5, 5)) == conv + 4 * 5 * 5 + 2 * (100 + 1)
    depthwise = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)
    assert count_macs(depthwise, (1, 4, 6, 6)) == 4 * 36 * 9


@pytest.mark.parametrize(
    "layer, shape, hand",
    [
        # one input value times each of the 3 taps: 3 products (the output formula said 9)
        (nn.ConvTranspose1d(1, 1, 3, bias=False), (1, 1, 1), 3),
        # 2 x 4 input values, each times 3 output channels x 2 taps
        (nn.ConvTranspose1d(2, 3, 2, bias=False), (1, 2, 4), 2 * 4 * 3 * 2),
        # grouped: 50 input values, each times 4 / 2 output channels x 9 taps; bias per output
        (nn.ConvTranspose2d(2, 4, 3, stride=2, groups=2), (1, 2, 5, 5), 50 * 2 * 9 + 4 * 11 * 11),
        (nn.ConvTranspose3d(1, 2, 2, bias=False), (2, 1, 2, 2, 2), 8 * 2 * 8),
    ],
)
def test_transposed_convolutions_by_hand(layer, shape, hand):
    """A transposed convolution multiplies every input value by each of its C_out / groups x
    taps weights (it scatters), not every output value by C_in / groups x taps."""
    assert count_macs(layer, shape) == hand


def test_static_model_by_hand():
    # levels [0, 1] -> [2] -> [3]; neuron nodes: one MAC per bias add
    wiring = Wiring([(0, 2), (1, 2), (0, 3), (2, 3)])
    model = StaticNeuralGraph(wiring, WiringSpec(3, node_op="neuron"), num_classes=2)
    k = 3
    assert count_params(model) == k + 3 + (1 * 2 + 2)  # edges, biases of 0, 1, 2, head
    assert count_macs(model, (5, 2)) == k + 3 + 2 * (1 + 1)
    assert sum(p.numel() for p in model.parameters()) == 4 + 3 + 4  # every candidate


def test_tiny_static_follows_the_convention():
    model = create_model("tiny_static")
    stem = 16 * 16 * 16 * (27 + 1) + 16 * 256 + 16 * 64 * (9 + 1) + 32 * 64 * (16 + 1) + 32 * 64
    nodes = 700 * (64 + 64 * 9)  # instance norm + 3x3 conv at 8 x 8, output nodes have none
    edges = 32_000 * 64
    head = 10 * (100 + 1)
    assert count_macs(model, (1, 3, 32, 32)) == stem + nodes + edges + head
    stem_params = sum(p.numel() for p in model.stem.parameters())
    assert count_params(model) == stem_params + 700 * (9 + 2) + 32_000 + 1010


def test_register_counter_for_other_modules():
    class Gate(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.w = nn.Parameter(torch.ones(n))
            self.inner = nn.Linear(n, n)

        def forward(self, x):
            return x * self.w

    class SubGate(Gate):
        pass

    @register_counter(Gate)
    class _GateCounter(Counter):
        def params(self, module):
            return int(module.w.numel())

        def macs(self, module, inputs, kwargs, output):
            return output.numel()

    model = nn.Sequential(SubGate(3), nn.Linear(3, 1))
    assert count_params(model) == 3 + 4  # the gate's inner Linear is not visited
    assert count_macs(model, (2, 3)) == 3 + 4
    with pytest.raises(TypeError, match="'module_type' must be an nn.Module subclass"):
        register_counter(int)
    with pytest.raises(ValueError, match="'input_shape' must be positive sizes"):
        count_macs(model, ())


def test_leaf_counters_cover_every_public_conv_and_norm():
    """The built-in counters are keyed on public torch classes; every public convolution and
    norm layer (lazy ones included) is counted."""
    from dnwgraph.models.counting import _counter

    names = [
        n
        for n in dir(nn)
        if any(
            n.removeprefix("Lazy").startswith(p)
            for p in ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose", "BatchNorm", "InstanceNorm")
        )
        or n in ("SyncBatchNorm", "LayerNorm", "GroupNorm")
    ]
    assert len(names) >= 25
    for name in names:
        cls = getattr(nn, name)
        assert _counter(cls.__new__(cls)) is not None, name
    conv = nn.Conv1d(2, 3, 3, padding=1)
    assert count_macs(conv, (1, 2, 5)) == 3 * 5 * (2 * 3 + 1)  # out numel x (taps + bias)
    assert count_macs(nn.BatchNorm1d(2), (1, 2, 5)) == 2 * 5


def test_macs_of_a_pyg_call_and_of_a_row_range():
    """``conv(x, edge_index)`` (PyG's order) and a call over a row range are counted as the
    call they are: positional argument 1 is the edge index, not a group."""
    import torch

    from dnwgraph import Wiring, WiringConv, count_macs

    wiring = Wiring([(0, 2), (1, 2), (0, 3), (2, 3)], num_nodes=4)
    conv = WiringConv(wiring, ratio=3)

    class PyG(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x):  # x: [B, 4], one feature per node and sample
            return self.conv(x.t(), wiring.edge_index)

    assert count_macs(PyG(), (5, 4)) == 3  # 3 selected edges, one multiply-add each

    class RowRange(PyG):
        def forward(self, x):  # only node 3's row: the 2 edges into it
            return self.conv(x.t(), first_row=3, last_row=4)

    with torch.no_grad():
        conv.edge_weight.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))  # every edge but the first
    assert count_macs(RowRange(), (5, 4)) == int(conv.active_mask()[conv.edge_index[1] == 3].sum())
