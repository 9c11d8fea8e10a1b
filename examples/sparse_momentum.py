"""Sparse momentum (Dettmers & Zettlemoyer 2019, arXiv:1907.04840) as a user's wiring method.

Every ``frequency`` steps drop the fraction ``drop_fraction`` of the active edges with the
smallest |w| and grow as many by the magnitude of the gradient's running mean
m <- beta m + (1 - beta) g (a selection does not see the optimizer's momentum buffer, so it
keeps its own); grown edges start at zero.  Run: python examples/sparse_momentum.py
"""

import torch

from dnwgraph.models import create_model
from dnwgraph.select import ScheduledSelection, register_selection


@register_selection("sparse_momentum")
class SparseMomentum(ScheduledSelection):
    needs_gradients = True  # every candidate's gradient, from DNW's straight-through backward

    def __init__(self, ratio, *, frequency=100, drop_fraction=0.5, beta=0.9, **kwargs):
        super().__init__(ratio, **kwargs)
        self.frequency, self.drop_fraction, self.beta = frequency, drop_fraction, beta
        self.register_buffer("momentum", torch.zeros(self.num_edges))  # saved, resumable

    def wants_gradients(self, step):
        return True  # the running mean takes the gradient of every step

    def update(self, edge_weight, step, grad):
        if grad is not None:
            self.momentum.mul_(self.beta).add_(grad.to(self.momentum), alpha=1 - self.beta)
        if step % self.frequency == 0:
            new = self.regrow(edge_weight.abs(), self.momentum.abs(), self.drop_fraction)
            edge_weight.masked_fill_(new & ~self.mask, 0.0)  # grown edges start at zero
            self.mask.copy_(new)


def main(steps: int = 200) -> float:
    """Train ``mnist1d_static`` on random data in a plain loop; the fraction of the final
    wiring that was not in the first one."""
    torch.manual_seed(0)
    model = create_model("mnist1d_static", selection="sparse_momentum", frequency=50)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    first = model.conv.active_mask().clone()
    for _ in range(steps):
        x, y = torch.randn(32, 40), torch.randint(0, 10, (32,))
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = model.conv.active_mask()
    return float((last & ~first).sum() / last.sum())


if __name__ == "__main__":
    print(f"new edges in the wiring: {main():.1%}")
