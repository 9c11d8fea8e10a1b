"""torch_geometric.explain on a model that calls conv(x, edge_index): the explainer's edge
mask reaches the layer's messages in the caller's edge order."""

import pytest
import torch
from torch import nn
from torch_geometric.explain import Explainer, GNNExplainer
from torch_geometric.explain.algorithm.utils import clear_masks, set_masks

from dnwgraph import Wiring, WiringConv
from dnwgraph.errors import DNWGraphError

# the caller's edge order differs from the layer's (target, source) order
EDGES = [(2, 3), (0, 2), (0, 3), (1, 2), (3, 4), (1, 4), (2, 4)]


class TwoHops(nn.Module):
    def __init__(self, impl="sparse"):
        super().__init__()
        torch.manual_seed(0)
        self.conv = WiringConv(Wiring(EDGES, num_nodes=5), ratio=5, impl=impl)
        self.lin = nn.Linear(3, 3)

    def forward(self, x, edge_index):
        h = torch.tanh(self.conv(x, edge_index))
        return self.lin(self.conv(h, edge_index) + x)


def edge_index():
    return torch.tensor(EDGES).t()


def manual(model, x, mask):
    """The model with every selected edge e of the caller's list scaled by sigmoid(mask[e])."""
    conv = model.conv
    weight = {}
    edges, used = conv.edge_index.t().tolist(), conv.active_mask().tolist()
    for (u, v), w, on in zip(edges, conv.edge_weight.tolist(), used, strict=True):
        weight[(u, v)] = w if on else 0.0
    a = torch.zeros(5, 5)
    for e, (u, v) in enumerate(EDGES):
        a[v, u] = weight[(u, v)] * torch.sigmoid(mask[e])
    h = torch.tanh(a @ x)
    return model.lin(a @ h + x)


@pytest.mark.parametrize("impl", ["sparse", "scatter", "dense"])
def test_masked_forward_matches_a_manual_computation(impl):
    model = TwoHops(impl).eval()
    x = torch.randn(5, 3)
    mask = torch.randn(len(EDGES))
    unmasked = model(x, edge_index())
    set_masks(model, mask, edge_index(), apply_sigmoid=True)
    try:
        torch.testing.assert_close(model(x, edge_index()), manual(model, x, mask))
    finally:
        clear_masks(model)
    torch.testing.assert_close(model(x, edge_index()), unmasked)  # the fused path again


def test_gnn_explainer_gives_an_edge_mask_in_the_callers_order():
    model = TwoHops().eval()
    x = torch.randn(5, 3)
    explainer = Explainer(
        model,
        algorithm=GNNExplainer(epochs=20),
        explanation_type="model",
        node_mask_type=None,
        edge_mask_type="object",
        model_config=dict(mode="regression", task_level="node", return_type="raw"),
    )
    explanation = explainer(x, edge_index(), index=4)
    mask = explanation.edge_mask
    assert mask.shape == (len(EDGES),) and bool(torch.isfinite(mask).all())
    # edges that the top-k left out cannot matter, whatever their mask: zero after the
    # explainer's hard mask (it keeps only edges with a non-zero gradient)
    used = model.conv.active_mask()
    own = {tuple(e): used[i].item() for i, e in enumerate(model.conv.edge_index.t().tolist())}
    for e, (u, v) in enumerate(EDGES):
        if not own[(u, v)]:
            assert mask[e] == 0
    assert mask.sum() > 0


def test_explaining_needs_the_edge_index():
    conv = WiringConv(Wiring(EDGES, num_nodes=5), ratio=5)
    set_masks(conv, torch.zeros(len(EDGES)), edge_index())
    with pytest.raises(DNWGraphError, match=r"conv\(x, edge_index\)"):
        conv(torch.randn(5, 2))
