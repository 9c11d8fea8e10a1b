"""A backend of your own for every dnwgraph layer: the kernel interface in 30 lines.

A backend is a ``Kernel`` registered in ``KERNELS``: ``aggregate(x, edge_weight, plan,
add_to)`` returns ``add_to + A x`` for one call of a layer, with autograd; ``accumulate_``
adds ``A x`` into a buffer in place (inference).  The plan holds the call's edges: the
selected ones (``plan.selected``) and those that get a gradient (``plan.grad``, every
candidate under DNW's straight-through rule); ``gradient_set_weights`` gives the weights of
the gradient set with the right gradient rule, so plain autograd does the rest.

Run: ``python examples/custom_kernel.py`` (prints the largest difference to the built-in
``scatter`` backend, in values and in edge gradients).
"""

import torch

from dnwgraph import WiringConv, block_dag
from dnwgraph.nn.kernels import KERNELS, Kernel, gradient_set_weights


def aggregate(x, edge_weight, plan, add_to):
    """Per-edge messages w_e * x[source] added at their targets with ``index_add``."""
    w = gradient_set_weights(edge_weight, plan).to(x.dtype)
    messages = w.unsqueeze(1) * x.index_select(0, plan.grad.cols)
    out = x.new_zeros(plan.num_nodes, x.size(1)).index_add(0, plan.grad.rows, messages)
    return out if add_to is None else add_to + out


@torch.no_grad()
def accumulate_(out, x, plan):
    weight = plan.values.new_zeros(plan.num_weights)  # the plan's own values are used
    return out.add_(aggregate(x, weight, plan, None))


if "index_add" not in KERNELS:
    KERNELS.register("index_add", Kernel("index_add", aggregate, accumulate_))

if __name__ == "__main__":
    torch.manual_seed(0)
    ours = WiringConv(block_dag([4, 8, 8, 2]), ratio=0.3, impl="index_add")
    ref = WiringConv(block_dag([4, 8, 8, 2]), ratio=0.3, impl="scatter")
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(22, 5)
    for conv in (ours, ref):
        conv(x).square().sum().backward()
    with torch.no_grad():
        print("max |out diff|:", float((ours(x) - ref(x)).abs().max()))
    print("max |grad diff|:", float((ours.edge_weight.grad - ref.edge_weight.grad).abs().max()))
