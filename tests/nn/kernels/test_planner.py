"""The planner: a call's edges, selected edges and gradient set, in the layer's numbering or
a level-order view's."""

import torch

from dnwgraph import Wiring, WiringSpec
from dnwgraph.nn import LevelExecutor


def test_a_level_order_view_aggregates_every_node_in_its_numbering():
    # renumbered level by level, the view's edges are no longer sorted by (target, source):
    # a call over every node (group=None) sorts them, and gives the layer's rows renumbered
    wiring = Wiring([(0, 3), (3, 1), (0, 2), (2, 1)], num_nodes=4)
    for impl in ("sparse", "scatter", "dense"):
        ex = LevelExecutor(wiring, WiringSpec(4, node_op="neuron", impl=impl))
        order = ex.chain.order
        view = order.view(ex.conv)
        key = view.edge_index[1] * 4 + view.edge_index[0]
        assert not bool((key[1:] >= key[:-1]).all())
        x = torch.randn(4, 3)
        out = view(x[order.order], group=None, first_row=0, last_row=4)
        torch.testing.assert_close(out, ex.conv(x)[order.order])
