r"""Fused sparse aggregation with DNW's straight-through gradient (the functional form).

Forward, over the selected edges :math:`\mathcal{A}`:

.. math::
    \mathrm{out}_v = \sum_{(u, v) \in \mathcal{A}} w_{uv}\, x_u
    \qquad\text{i.e.}\qquad \mathrm{OUT} = A_{\mathcal{A}}\, X

computed as one sparse times dense matmul: per-edge messages :math:`[E, F]` are never
materialised.  On a CPU the product is a weighted bag sum (:class:`BagMatrix`: one vectorised
kernel per output row, rows shared evenly in work among torch's threads), on a GPU cuSPARSE's
CSR product.  Backward, with :math:`G = \partial L / \partial\,\mathrm{OUT}`:

.. math::
    \frac{\partial L}{\partial X} = A_{\mathcal{A}}^{\top} G, \qquad
    \frac{\partial L}{\partial w_{uv}} = \langle x_u, G_v \rangle
    \quad\text{for every edge } (u, v) \text{ of the gradient set}

The gradient set is every candidate (straight-through, DNW) or the selected edges only.  The
edge gradient is a sampled dense-dense matmul (SDDMM): when the gradient set is dense in its
rows and columns, :math:`G X^{\top}` is formed with BLAS (in row blocks of bounded memory,
which start where the targets start to see other sources, so a block DAG's blocks are
complete) and gathered at the edges; when it is sparse, one sampled matmul
(:func:`torch.sparse.sampled_addmm`) at the CSR pattern of the edges.

Half precision: ``float16`` and ``bfloat16`` inputs are aggregated in ``float32`` (a half
running sum of many edges loses digits; MKL's CSR product has no half kernel on a CPU
either) and the results are rounded once, on every device.  Under :func:`torch.autocast` the
aggregation behaves like a matmul: ``x`` is cast to the autocast dtype, which is also the
output's; the weight gradient keeps the weight's dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dnwgraph.nn.kernels.dtypes import accumulation_dtype, no_autocast, output_dtype
from dnwgraph.nn.kernels.first_order import tie
from dnwgraph.nn.kernels.matmul import spmm
from dnwgraph.nn.kernels.plan import AggregationPlan
from dnwgraph.nn.kernels.sampled import sddmm


def aggregate_forward(
    x: Tensor, plan: AggregationPlan, add_to: Tensor | None, out_dtype: torch.dtype
) -> Tensor:
    """:math:`A X` (or :math:`Y + A X`) in ``out_dtype``, summed in its accumulation dtype:
    the forward pass of :func:`wiring_matmul`, without autograd."""
    acc = accumulation_dtype(out_dtype)
    with no_autocast(x.device):
        # with add_to, the sum is the product's output buffer: one pass
        add = None if add_to is None else add_to.to(acc)
        out = spmm(plan.operand(acc), x.to(acc), add)
    return out.to(out_dtype)


def aggregate_backward(
    grad_out: Tensor,
    x: Tensor,
    plan: AggregationPlan,
    x_grad: bool,
    weight_grad: bool,
    weight_dtype: torch.dtype,
) -> tuple[Tensor | None, Tensor | None]:
    r"""Gradients of :func:`wiring_matmul` for ``x`` (:math:`A^\top G`) and for the edge
    weights (the SDDMM over the plan's gradient set, zero elsewhere), each only if asked."""
    acc = accumulation_dtype(grad_out.dtype)
    grad_x = grad_w = None
    with torch.no_grad(), no_autocast(x.device):
        g = grad_out.to(acc).contiguous()
        if x_grad:
            grad_x = spmm(plan.operand(acc, transpose=True), g).to(x.dtype)
        if weight_grad:
            values = sddmm(g, x.to(acc), plan.grad)
            if plan.grad.covers(plan.num_weights):  # every weight, in order
                grad_w = values
            else:
                grad_w = g.new_zeros(plan.num_weights).index_copy_(0, plan.grad.ids, values)
            grad_w = grad_w.to(weight_dtype)
    return grad_x, grad_w


NO_DOUBLE_BACKWARD = (
    "the fused sparse aggregation of WiringConv has no second derivative (double backward, "
    "create_graph=True): impl='sparse' runs it, and so does impl='auto' for inference and for "
    "calls too large to run densely; build the layer with impl='scatter' or impl='dense', "
    "whose plain autograd ops have one (a layer or a recurrent model: a static model's level "
    "executor has none, whatever its impl)"
)
"""Why :func:`wiring_matmul` has no second derivative, and what to use instead."""


class _WiringMatmul(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        x: Tensor,
        edge_weight: Tensor,
        add_to: Tensor | None,
        plan: AggregationPlan,
        out_dtype: torch.dtype,
    ) -> Tensor:
        ctx.plan = plan
        ctx.w_dtype = edge_weight.dtype
        ctx.add_dtype = None if add_to is None else add_to.dtype
        ctx.save_for_backward(x, edge_weight)
        return aggregate_forward(x, plan, add_to, out_dtype)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx, grad_out: Tensor
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, None, None]:
        x, edge_weight = ctx.saved_tensors
        need_x, need_w, need_add = ctx.needs_input_grad[:3]
        grad_x, grad_w = aggregate_backward(grad_out, x, ctx.plan, need_x, need_w, ctx.w_dtype)
        grad_add = grad_out.to(ctx.add_dtype) if need_add else None
        # create_graph=True: a second derivative through them must fail loudly
        grad_x, grad_w = tie([grad_x, grad_w], [grad_out, x, edge_weight], NO_DOUBLE_BACKWARD)
        return grad_x, grad_w, grad_add, None, None


@torch.no_grad()
def accumulate_(out: Tensor, x: Tensor, plan: AggregationPlan) -> Tensor:
    r""":math:`Y \leftarrow Y + A_{\mathcal{A}} X` in place, without autograd (inference).

    Args:
        out (Tensor): :math:`Y`, shape ``[num_nodes, F]``, updated in place.
        x (Tensor): node features, shape ``[num_src, F]``.
        plan (AggregationPlan): the selected edges.

    Returns:
        Tensor: ``out``.
    """
    acc = accumulation_dtype(out.dtype)
    with no_autocast(x.device):
        a, x = plan.operand(acc), x.to(acc)
        if out.dtype != acc:  # summed in the accumulation dtype and rounded once, as
            out.copy_(spmm(a, x, out.to(acc)))  # wiring_matmul does
        elif out.is_contiguous() and (isinstance(a, Tensor) or torch.get_num_threads() == 1):
            # the product adds into out's memory (no second pass over it, as the addition of
            # a bag sum's output is): cuSPARSE, or torch's COO kernel on one CPU thread
            if not isinstance(a, Tensor):
                a = plan.matrix(acc, layout=torch.sparse_coo)
            torch.addmm(out, a, x, out=out)
        else:
            out.add_(spmm(a, x))
    return out


def wiring_matmul(
    x: Tensor, edge_weight: Tensor, plan: AggregationPlan, *, add_to: Tensor | None = None
) -> Tensor:
    r"""Fused :math:`A_{\mathcal{A}} X` (or :math:`Y + A_{\mathcal{A}} X`) with the
    straight-through edge gradient of ``plan``.

    Args:
        x (Tensor): node features, shape ``[num_src, F]``.
        edge_weight (Tensor): all candidate weights, shape ``[E]`` (gradient flows here).
        plan (AggregationPlan): selected edges and gradient set.
        add_to (Tensor, optional): :math:`Y`, shape ``[num_nodes, F]``, summed into the
            product's output buffer (no separate addition pass). (default: ``None``)

    Returns:
        Tensor: shape ``[num_nodes, F]``.

    The plan carries the selected weights (its sparse matrix is built from them once); the
    ``edge_weight`` argument is where the gradient goes.  Half-precision features are
    aggregated in ``float32``; under :func:`torch.autocast` ``x`` is cast to the autocast dtype
    (the output's dtype).  :meth:`WiringConv.plan
    <dnwgraph.WiringConv.plan>` returns the plan of the current weights.

    Examples:
        >>> from dnwgraph import Wiring, WiringConv
        >>> conv = WiringConv(Wiring([(0, 2), (1, 2)]), ratio=1)
        >>> with torch.no_grad():
        ...     _ = conv.edge_weight.copy_(torch.tensor([0.5, 3.0]))
        >>> x = torch.ones(3, 1, requires_grad=True)
        >>> wiring_matmul(x, conv.edge_weight, conv.plan()).view(-1).tolist()
        [0.0, 0.0, 3.0]
    """
    out_dtype = output_dtype(x, edge_weight)
    if x.is_floating_point() and torch.is_autocast_enabled(x.device.type):
        x = x.to(out_dtype)
    return _WiringMatmul.apply(x, edge_weight, add_to, plan, out_dtype)
