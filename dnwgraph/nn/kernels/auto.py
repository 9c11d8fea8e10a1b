r"""``impl="auto"``: the backend of each aggregation call, chosen by size, device and pass.

The rule is one bound on the dense product's work, not a fitted cost model.  On a CPU, a call
that autograd records (a training pass) runs ``dense`` (a masked matrix and BLAS) when its
dense product has at most :data:`DENSE_MACS_CPU` multiply-adds,
:math:`N \cdot S \cdot F` (output rows, source rows, features per row): at a weight update
the sparse path rebuilds its plan, which costs more than such a product.  Every other call
runs ``sparse``: a large product, a pass without autograd (inference reuses the plan of the
unchanged weights, and the sparse sums then win at every size measured) and every call on a
GPU (no GPU measurement backs another choice yet).  Under a :mod:`torch.func` transform of
the inputs (``vmap``, ``jacrev``) it runs ``scatter``: plain tensor operations, which a
transform can enter, where ``sparse`` is a hand-written ``autograd.Function``.
``benchmarks/bench_auto.py`` times ``auto`` against every backend from a 15-node DAG model to
20,000 nodes, training and inference, and writes the table into ``docs/benchmarks.md``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dnwgraph._tracing import in_func_transform
from dnwgraph.errors import DNWGraphError
from dnwgraph.nn.kernels.backends import KERNELS, Kernel
from dnwgraph.nn.kernels.plan import AggregationPlan

#: The name of the automatic choice (a layer also takes every registered kernel's name).
AUTO = "auto"

#: Most multiply-adds (output rows x source rows x features) of a training call the CPU runs
#: densely: where a sweep of single layers (16-256 targets, 16-192 sources, 16-1,280 features,
#: 1 and 2 threads) puts the dense and the sparse training step at the same time.
DENSE_MACS_CPU = 2**21


def kernel_for(impl: str, plan: AggregationPlan, x: Tensor) -> Kernel:
    """The kernel that computes ``plan`` on ``x`` (``[plan.num_src, F]``): ``impl`` itself,
    or for ``"auto"`` the one the rule above picks.

    Example:
        >>> import torch
        >>> from dnwgraph import WiringConv, block_dag
        >>> small = WiringConv(block_dag([4, 4]), ratio=4).plan()
        >>> x = torch.zeros(8, 16)
        >>> kernel_for("auto", small, x).name, kernel_for("sparse", small, x).name
        ('dense', 'sparse')
        >>> with torch.no_grad():  # inference reuses the sparse plan
        ...     kernel_for("auto", small, x).name
        'sparse'
    """
    if in_func_transform():  # vmap or jacrev over the inputs: plain tensor operations only
        impl = "scatter" if impl == AUTO else impl
        if impl not in ("scatter", "dense"):
            raise DNWGraphError(
                f"impl={impl!r} runs a hand-written autograd.Function, which torch.func "
                "transforms cannot enter; use impl='scatter' or 'dense' (or 'auto', which runs "
                "scatter under a transform)"
            )
    if impl != AUTO:
        return KERNELS.get(impl)
    training = torch.is_grad_enabled()
    if x.device.type == "cpu" and training and plan.num_nodes * x.numel() <= DENSE_MACS_CPU:
        return KERNELS.get("dense")
    return KERNELS.get("sparse")
