r"""The pull chain of a deep DAG: every level gathers its inputs from the node outputs so far,
at a cost proportional to the level's own edges and nodes.

With the nodes numbered level by level (level :math:`k` the node range
:math:`[b_k, b_{k+1})`, the nodes without out-edges last, :math:`[b_L, N)`), the outputs
:math:`Z` of the levels run so far are rows of one buffer, and a level's inputs are

.. math::
    I_{L_l} = X_{L_l} + A_{L_l,\, < b_l}\, Z_{< b_l}, \qquad Z_{L_l} = f_l(I_{L_l}),

one bag sum over the selected edges *into* the level (the rows of :math:`Z` they read), then
the level's node op; the nodes without out-edges (the *sinks*) are pulled last, the same way.
Backward, with :math:`G_l = \partial L / \partial I_{L_l}`, a level adds
:math:`A_{L_l, <b_l}^\top G_l` into the rows of its sources in one gradient buffer of
:math:`Z` (``index_add_`` of its edges' messages) and computes the edge gradient
:math:`\langle Z_u, G_{l,v} \rangle` of its candidates (:func:`~.sampled.sddmm`) into one
:math:`[E]` buffer; when its turn comes, level :math:`l` reads its rows of the buffer of
:math:`Z`, complete by then.  Nothing per level touches the later nodes or all the edges,
unlike the push chain (:mod:`.chain`), whose level :math:`l` adds its products into the
inputs of every later node (:math:`\propto N` per level) and whose edge gradient is a fresh
:math:`[E]` tensor per level.

Autograd sees one :class:`_Pull` and the node op per level.  The edge weights and the
initial inputs enter through :class:`_Enter`, before the first level, so its backward runs
last and returns their gradients, assembled by the levels in the pass's buffers
(:class:`PullPass`).  Without autograd (inference, or nothing that needs a gradient) the
levels run as the plain loop of :func:`pull_levels`: the node op, one copy and one bag sum
per level.

The plans: what depends on the edges and the levels alone (the candidates sorted by target,
each level's slice of them, its edge set for the gradient) is built once
(:class:`PullSteps`); what depends on the selection (each level's selected edges, their
weights and bag offsets) once per weight state, for all levels at once (:class:`PullPlan`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from dnwgraph.nn.kernels.dtypes import accumulation_dtype
from dnwgraph.nn.kernels.first_order import first_order
from dnwgraph.nn.kernels.node_first import hooked
from dnwgraph.nn.kernels.pull_plan import PullPlan, pull_plan
from dnwgraph.nn.kernels.sampled import sddmm

#: Backends whose calls the pull chain computes (their sums and gradient rule are the fused
#: sparse product's; ``scatter`` and ``dense`` stay the oracles, called level by level).
PULLED_IMPLS = ("sparse", "auto")

#: Why the level executor's chains have no second derivative, and what has one.
NO_DOUBLE_BACKWARD_LEVELS = (
    "the level executor of a static model (StaticNeuralGraph, the static presets) has no "
    "second derivative (double backward, create_graph=True), whatever its impl; a single "
    "WiringConv built with impl='scatter' or impl='dense' has one"
)


def pulls(conv: Any, x: Tensor) -> bool:
    """Whether a chain over ``conv`` (the layer or its level-order view) may run as a pull
    chain on ``x``: a sparse (or automatic) backend, eager mode without autocast, hooks or
    an explainer, a selection that keeps one mask per weight state, and features."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return False
    if torch.is_autocast_enabled(x.device.type) or not x.is_floating_point() or not x.numel():
        return False
    layer = getattr(conv, "conv", conv)  # the layer itself behind a level-order view
    if getattr(layer, "explain", False) or hooked(layer):
        return False
    return conv.impl in PULLED_IMPLS and conv.selection.cache_key() is not None


def pull_chain(
    conv: Any,
    bounds: list[int],
    node_ops: Sequence[nn.Module],
    x: Tensor,
    *,
    first: bool,
    keep: bool,
    grad: bool,
) -> tuple[list[Tensor], Tensor] | None:
    r"""Run the levels of ``conv`` (node ids numbered level by level, level :math:`k` the
    rows ``bounds[k]:bounds[k + 1]``, the sinks ``bounds[L]:N``) as a pull chain.

    Args:
        conv (WiringConv or LevelIds): the layer (or its level-order view), called with
            nothing: its selection, weights and plan cache are read.
        bounds (list of int): :math:`b_0 = 0, b_1, \dots, b_L, N`.
        node_ops (sequence of nn.Module): one per level.
        x (Tensor): every node's initial inputs ``[N, B, *S]``, or the first level's
            (``first``: the other nodes start at zero).
        keep (bool): also return the inputs of every level after the first (else only the
            sinks').
        grad (bool): record autograd (else the levels run without it, :func:`pull_levels`).

    Returns:
        (list of Tensor, Tensor) or None: the inputs of the levels (with ``keep``: the
        first level's too unless ``first``) and of the sinks, ``[rows, B, *S']``; ``None``
        when the levels do not allow a pull chain (an edge into the first level).

    Example:
        >>> from dnwgraph import Wiring, WiringSpec
        >>> from dnwgraph.nn import LevelExecutor
        >>> path = Wiring([(i, i + 1) for i in range(11)] + [(0, 11)], 12)  # 11 levels
        >>> ex = LevelExecutor(path, WiringSpec(12, node_op="neuron"))
        >>> x = torch.zeros(12, 2).index_fill(0, torch.tensor([0]), 1.0)
        >>> levels, sinks = pull_chain(
        ...     ex.conv, ex.chain.pull_bounds, ex.node_ops, x, first=False, keep=False, grad=False
        ... )
        >>> torch.allclose(sinks, ex.plain_forward(x)[11:])
        True
    """
    plan = pull_plan(conv, bounds)
    if plan is None:
        return None
    if not grad:
        return pull_levels(plan, node_ops, x, first=first, keep=keep)
    weight = conv.selection.weight(conv.edge_weight)  # edge-popup: its scores' gradient
    run = PullPass(plan, None if first else x.reshape(bounds[-1], -1), x.dtype, weight.dtype)
    inputs = _Enter.apply(x, weight, run)
    kept = [inputs] if keep and not first else []
    steps = plan.steps.num_steps
    for step, op in enumerate(node_ops, start=1):
        inputs = _Pull.apply(op(inputs), weight, run, step)
        if keep and step < steps:
            kept.append(inputs)
    return kept, inputs


def pull_levels(
    plan: PullPlan, node_ops: Sequence[nn.Module], x: Tensor, *, first: bool, keep: bool
) -> tuple[list[Tensor], Tensor]:
    r"""The pull chain without autograd (:func:`pull_chain` with ``grad=False``), level by
    level as the maths reads:

    .. math::
        Z_{L_l} = f_l(I_{L_l}), \qquad
        I_{L_{l+1}} = X_{L_{l+1}} + A_{L_{l+1},\, <b_{l+1}}\, Z_{<b_{l+1}},

    the second by :meth:`PullPass.pull`, as in training (the outputs :math:`Z` rows of one
    buffer): a level costs its node op, one copy of its outputs into the buffer and one bag
    sum over the selected edges into the next level, nothing for autograd.  ``x`` holds
    every node's initial inputs ``[N, B, *S]``, or the first level's (``first``: :math:`X =
    0` after it); the result is that of :func:`pull_chain`."""
    bounds = plan.steps.bounds
    run = PullPass(plan, None if first else x.reshape(bounds[-1], -1), x.dtype, plan.values.dtype)
    inputs = x if first else x[: bounds[1]]
    kept = [inputs] if keep and not first else []
    for step, op in enumerate(node_ops, start=1):
        inputs = run.pull(step, op(inputs))
        if keep and step < plan.steps.num_steps:  # not the sinks
            kept.append(inputs)
    return kept, inputs


class PullPass:
    """One pass of a pull chain: the node outputs so far (one buffer, in the accumulation
    dtype) and, in its backward pass, the gradient buffers of the node outputs, the initial
    inputs and the candidates (sorted by target).

    Args:
        plan (PullPlan): the selected edges.
        x (Tensor or None): every node's initial inputs ``[N, F]`` (``None``: zero after the
            first level).
        x_dtype (torch.dtype): the dtype of the inputs, and ``weight_dtype`` of the weights.
    """

    def __init__(
        self, plan: PullPlan, x: Tensor | None, x_dtype: torch.dtype, weight_dtype: torch.dtype
    ) -> None:
        self.plan, self.steps, self.x = plan, plan.steps, x
        self.dtype = torch.promote_types(x_dtype, weight_dtype)
        self.acc = accumulation_dtype(self.dtype)
        self.edges = plan.step_edges(self.acc)  # step s's selected edges at s - 1
        self.z: Tensor | None = None  # [b_L, F]: every level's outputs so far
        self.z_nodes: Tensor | None = None  # the same, [b_L, B, *S]
        self.needs_x = self.needs_w = False
        self.grad_z: Tensor | None = None  # [b_L, F]: of the node outputs
        self.grad_in: Tensor | None = None  # [N - b_1, F]: of the pulled inputs
        self.last: int | None = None  # the last step whose backward ran in this pass

    def pull(self, step: int, z: Tensor) -> Tensor:
        r"""Forward of ``step``: the outputs ``z`` of the level before it into the buffer,
        then :math:`I = X + A Z` for its rows, ``[rows, *z.shape[1:]]``."""
        steps = self.steps
        if self.z is None:  # Z by node, [b_L, B, *S], and as the bag sums read it, [b_L, F]
            self.z_nodes = z.new_empty(steps.bounds[-2], *z.shape[1:], dtype=self.acc)
            self.z = self.z_nodes.view(steps.bounds[-2], -1)
        a, lo, hi = steps.bounds[step - 1 : step + 2]  # the level before [a, lo), ours [lo, hi)
        self.z_nodes[a:lo] = z  # type: ignore[index]
        out = self.edges[step - 1].bag_sum(self.z)
        if self.x is not None:
            out.add_(self.x[lo:hi])
        # half precision is rounded once; vector nodes ([rows, B]) read the rows as they are
        out = out if self.acc == self.dtype else out.to(self.dtype)
        return out if z.dim() == 2 else out.view(hi - lo, *z.shape[1:])

    def pull_backward(self, step: int, grad: Tensor) -> Tensor:
        r"""Backward of ``step`` for :math:`G = \partial L / \partial I` of its rows: kept
        for the edge gradient, :math:`A^\top G` added into the sources' rows; returns the
        (complete) gradient of the outputs of the level before it, ``[rows, F]``."""
        if self.last is None or step >= self.last:  # the first step of a backward pass
            self._start_backward()
        self.last = step
        lo, hi = self.steps.rows(step)
        g = self.grad_in[lo - self.steps.bounds[1] : hi - self.steps.bounds[1]]  # type: ignore[index]
        g.copy_(grad.reshape(hi - lo, -1))
        edges = self.edges[step - 1]
        messages = g.index_select(0, edges.local) * edges.weights.unsqueeze(1)
        self.grad_z.index_add_(0, edges.src, messages)  # type: ignore[union-attr]
        a, b = self.steps.rows(step - 1)
        return self.grad_z[a:b]  # type: ignore[index]

    def _start_backward(self) -> None:
        z = self.z
        assert z is not None
        self.grad_z = torch.zeros_like(z)
        self.grad_in = z.new_zeros(self.steps.bounds[-1] - self.steps.bounds[1], z.size(1))

    def end_backward(self, grad_first: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
        r"""At the end of a backward pass (when the first level's inputs have their
        gradient ``grad_first``): the gradients of the initial inputs (``[N, F]``, when
        :attr:`needs_x`) and of the weights (``[E]``, by edge id, when :attr:`needs_w`):
        the edge gradient :math:`\langle Z_u, G_v \rangle` of every edge of the gradient
        set in one sampled product."""
        if self.last is None and self.z is not None:  # no step ran backward
            self._start_backward()
        grad_in, grad_x, grad_w = self.grad_in, None, None
        if self.needs_x and grad_in is not None and grad_first is not None:
            grad_x = torch.cat([grad_first.reshape(self.steps.bounds[1], -1).to(grad_in), grad_in])
        if self.needs_w and grad_in is not None:
            edges = self.plan.grad_set
            values = sddmm(grad_in, self.z, edges)  # type: ignore[arg-type]
            grad_w = (
                values
                if self.plan.all_grads
                else values.new_zeros(self.steps.src.numel()).index_copy_(0, edges.ids, values)
            )
            if self.steps.order is not None:  # sorted by target, to edge ids
                grad_w = torch.empty_like(grad_w).index_copy_(0, self.steps.order, grad_w)
        self.grad_z = self.grad_in = self.last = None
        return grad_x, grad_w


class _Enter(torch.autograd.Function):
    """The first level's inputs, from the initial inputs ``x``; the weights and ``x`` enter
    the chain here, so its backward runs last and returns their gradients."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, run: PullPass) -> Tensor:  # type: ignore[override]
        ctx.run, ctx.shape, ctx.dtypes = run, x.shape, (x.dtype, weight.dtype)
        run.needs_x = x.requires_grad and run.x is not None
        run.needs_w = weight.requires_grad
        return x.view_as(x) if run.x is None else x[: run.steps.bounds[1]].clone()

    @staticmethod
    @first_order(NO_DOUBLE_BACKWARD_LEVELS)
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:  # type: ignore[override]
        run: PullPass = ctx.run
        need_x, need_w = ctx.needs_input_grad[:2]
        grad_x, grad_w = run.end_backward(grad if run.x is not None else None)
        if run.x is None:  # the first level's inputs are x
            grad_x = grad
        x_dtype, w_dtype = ctx.dtypes
        gx = grad_x.view(ctx.shape).to(x_dtype) if need_x and grad_x is not None else None
        gw = grad_w.to(w_dtype) if need_w and grad_w is not None else None
        return gx, gw, None


class _Pull(torch.autograd.Function):
    """One step of the chain (:meth:`PullPass.pull`): the outputs ``z`` of a level in, the
    inputs of the next level (or of the sinks) out.  ``weight`` is an input so that the
    result records a gradient whenever the weights need one; its gradient is returned by
    :class:`_Enter`."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, weight: Tensor, run: PullPass, step: int) -> Tensor:  # type: ignore[override]
        ctx.run, ctx.step, ctx.shape, ctx.dtype = run, step, z.shape, z.dtype
        return run.pull(step, z)

    @staticmethod
    @first_order(NO_DOUBLE_BACKWARD_LEVELS)
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:  # type: ignore[override]
        grad_z = ctx.run.pull_backward(ctx.step, grad)
        return grad_z.view(ctx.shape).to(ctx.dtype), None, None, None
