r"""The official DNW code's computation pattern, written from its description, as a baseline.

The reference implementation (allenai/dnw, ``models/graphs/neuralgraph.py`` and ``util.py``)
does not run a dense :math:`N \times N` matmul per level.  Per forward pass it

* keeps one :math:`N \times N` weight (a 1x1 convolution's ``[N, N, 1, 1]``) and takes a
  sort-based top-k over **all** :math:`N^2` entries (``ChooseTopEdges``: sort :math:`|w|`,
  zero the smallest :math:`N^2 - k`; the backward pass is the identity, so every entry gets
  the straight-through gradient);
* static graph: for every block :math:`[lo, hi)` of nodes, in ``[B, C, *S]`` layout, runs the
  block's node op (InstanceNorm, activation, single-channel 3-wide convolution) on the first
  :math:`hi - lo` channels of a shrinking state, then **one dense 1x1 convolution** with the
  slice ``w[hi:, lo:hi]`` (later nodes x block) and adds it to the remaining channels;
* recurrent graph (discrete or continuous time): every step (or ODE evaluation) is activation,
  single-channel convolution of all :math:`N` channels, the 1x1 convolution with the top-k
  weight (re-chosen at every call, as ``Graph.forward`` calls ``get_weight``), InstanceNorm.

:func:`official_like` builds that computation for one of our models and copies its parameters
(stem, node ops, norms, head; the edge weights into the dense weight, zero elsewhere, so the
top-k over :math:`N^2` entries picks the same edges as ours over the candidates), so the two
give the same outputs and gradients and a benchmark compares only how they compute.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dnwgraph.models.continuous import ContinuousTimeNeuralGraph
from dnwgraph.models.discrete import DiscreteTimeNeuralGraph
from dnwgraph.models.static import StaticNeuralGraph


class TopEdges(torch.autograd.Function):
    """Keep the ``k`` largest of ``|w|`` by a full sort (zero the rest); identity backward."""

    @staticmethod
    def forward(ctx: Any, weight: Tensor, k: int) -> Tensor:  # type: ignore[override]
        out = weight.clone()
        order = weight.detach().flatten().abs().sort().indices
        out.view(-1)[order[: weight.numel() - k]] = 0
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return grad, None


def _dense_weight(model: nn.Module, dim: int) -> Tensor:
    """Our candidate weights scattered into an ``[N, N, 1(, 1)]`` 1x1-convolution weight."""
    conv = model.conv
    n = conv.num_nodes
    src, dst = conv.edge_index
    w = torch.zeros(n, n, dtype=conv.edge_weight.dtype)
    w[dst, src] = conv.edge_weight.detach()
    return w.view(n, n, *([1] * dim))


def _conv(dim: int):
    return F.conv1d if dim == 1 else F.conv2d


def _read(x: Tensor, kind: str) -> Tensor:
    """Readout of ``[B, n_out, *S]``: the reference's centre crop + average pool, or max."""
    if kind == "max":
        return x.flatten(2).amax(-1)
    if kind == "centre":
        for d in range(2, x.dim()):  # 3-wide crop at s/2 - 2, then the 2-wide pool's window
            start = max(x.size(d) // 2 - 2, 0)
            x = x.narrow(d, start, min(2, x.size(d) - start))
        return x.flatten(2).mean(-1)
    return x.flatten(2).mean(-1)


class _Official(nn.Module):
    """Stem, zero-padded initial state, readout and head shared by the baselines."""

    def __init__(self, model: nn.Module, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.num_nodes = model.num_nodes
        self.k = model.conv.k
        self.stem = copy.deepcopy(model.stem)
        self.head = copy.deepcopy(model.head)
        self.readout = model.readout.kind
        self.n_in = int(model.input_nodes.numel())
        self.n_out = int(model.output_nodes.numel())
        n = self.num_nodes
        assert model.input_nodes.tolist() == list(range(self.n_in))
        assert model.output_nodes.tolist() == list(range(n - self.n_out, n))
        self.weight = nn.Parameter(_dense_weight(model, dim))

    def initial(self, x: Tensor) -> Tensor:
        s = self.stem(x)
        zeros = s.new_zeros(s.size(0), self.num_nodes - s.size(1), *s.shape[2:])
        return torch.cat([s, zeros], 1)

    def read(self, x: Tensor) -> Tensor:
        return self.head(_read(x[:, -self.n_out :], self.readout))


class OfficialStatic(_Official):
    """The reference ``StaticNeuralGraph`` pattern over our static model's levels."""

    def __init__(self, model: StaticNeuralGraph) -> None:
        ex = model.executor
        dim = ex.node_ops[0].dim
        super().__init__(model, dim)
        self.blocks: list[tuple[int, int]] = []
        self.norms = nn.ModuleList()
        self.act = copy.deepcopy(ex.node_ops[0].act)
        dw = torch.zeros(self.num_nodes, 1, *ex.node_ops[0].conv.weight.shape[2:])
        for rng, op in zip(ex.ranges, ex.node_ops, strict=True):
            assert rng is not None and op._steps == ["norm", "act", "conv"]
            lo, size = rng
            self.blocks.append((lo, lo + size))
            self.norms.append(copy.deepcopy(op.norm))
            dw[lo : lo + size] = op.conv.weight.detach()
        self.dw = nn.Parameter(dw)
        self.pad = dw.size(-1) // 2

    def forward(self, x: Tensor) -> Tensor:
        x = self.initial(x)
        w = TopEdges.apply(self.weight, self.k)
        conv = _conv(self.dim)
        for (lo, hi), norm in zip(self.blocks, self.norms, strict=True):
            size = hi - lo
            a = self.act(norm(x[:, :size]))
            a = conv(a, self.dw[lo:hi], padding=self.pad, groups=size)
            x = x[:, size:] + conv(a, w[hi:, lo:hi])
        return self.read(x)


class _OfficialStep(nn.Module):
    """Activation, single-channel convolution, 1x1 convolution with a fresh top-k, norm."""

    def __init__(self, owner: _Official, model: nn.Module) -> None:
        super().__init__()
        step = _graph_step(model)
        assert step.node_op._steps == ["act", "conv"] and step.norm._steps == ["norm"]
        self.owner = [owner]  # not a submodule: the weight is registered on the owner
        self.dw = nn.Parameter(step.node_op.conv.weight.detach().clone())
        self.act = copy.deepcopy(step.node_op.act)
        self.norm = copy.deepcopy(step.norm.norm)
        self.pad = self.dw.size(-1) // 2

    def forward(self, t: Any, x: Tensor) -> Tensor:
        owner = self.owner[0]
        conv = _conv(owner.dim)
        a = conv(self.act(x), self.dw, padding=self.pad, groups=x.size(1))
        return self.norm(conv(a, TopEdges.apply(owner.weight, owner.k)))


def _graph_step(model: nn.Module) -> Any:
    return model.func.step if isinstance(model, ContinuousTimeNeuralGraph) else model.step


class OfficialDiscrete(_Official):
    """The reference ``DiscreteTimeNeuralGraph`` pattern (T steps, top-k at every step)."""

    def __init__(self, model: DiscreteTimeNeuralGraph) -> None:
        super().__init__(model, model.step.node_op.dim)
        self.steps = model.steps
        self.step = _OfficialStep(self, model)

    def forward(self, x: Tensor) -> Tensor:
        x = self.initial(x)
        for _ in range(self.steps):
            x = self.step(None, x)
        return self.read(x)


class OfficialContinuous(_Official):
    """The reference ``ContinuousTimeNeuralGraph`` pattern (torchdiffeq, top-k per call)."""

    def __init__(self, model: ContinuousTimeNeuralGraph) -> None:
        super().__init__(model, model.func.step.node_op.dim)
        self.step = _OfficialStep(self, model)
        self.solver, self.rtol, self.atol, self.t1 = model.solver, model.rtol, model.atol, model.t1

    def forward(self, x: Tensor) -> Tensor:
        from torchdiffeq import odeint

        x = self.initial(x)
        t = torch.tensor([0.0, self.t1], dtype=x.dtype, device=x.device)
        x = odeint(self.step, x, t, rtol=self.rtol, atol=self.atol, method=self.solver)[-1]
        return self.read(x)


def official_like(model: nn.Module) -> nn.Module:
    """The official-pattern baseline of ``model`` with its parameters (same mode)."""
    for cls, base in (
        (ContinuousTimeNeuralGraph, OfficialContinuous),
        (DiscreteTimeNeuralGraph, OfficialDiscrete),
        (StaticNeuralGraph, OfficialStatic),
    ):
        if isinstance(model, cls):
            param = next(model.parameters())
            return base(model).to(param.device, param.dtype).train(model.training)
    raise TypeError(f"no official pattern for {type(model).__name__}")


def edge_grad(baseline: nn.Module, model: nn.Module) -> Tensor:
    """The baseline's dense weight gradient read at ``model``'s candidate edges."""
    src, dst = model.conv.edge_index
    return baseline.weight.grad.view(baseline.num_nodes, baseline.num_nodes)[dst, src]
