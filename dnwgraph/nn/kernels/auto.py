r"""``impl="auto"``: the backend of each aggregation call, chosen by size and device.

The rule is one bound, not a fitted cost model: on a CPU a call whose dense matrix (output
rows x source rows) has at most :data:`DENSE_ELEMENTS_CPU` entries runs ``dense`` (a masked
matrix and BLAS: the sparse path's plan building costs more than such a product), every other
call ``sparse``.  On a GPU every call runs ``sparse`` (no GPU measurement backs another
choice yet).  ``benchmarks/bench_auto.py`` times ``auto`` against every backend from a 15-node
DAG model to 20,000 nodes and writes the table into ``docs/benchmarks.md``.
"""

from __future__ import annotations

from torch import Tensor

from dnwgraph.nn.kernels.backends import KERNELS, Kernel
from dnwgraph.nn.kernels.plan import AggregationPlan

#: The name of the automatic choice (a layer also takes every registered kernel's name).
AUTO = "auto"

#: Largest dense matrix (output rows x source rows) the CPU runs densely.
DENSE_ELEMENTS_CPU = 2**14


def kernel_for(impl: str, plan: AggregationPlan, x: Tensor) -> Kernel:
    """The kernel that computes ``plan`` on ``x``: ``impl`` itself, or for ``"auto"`` the
    one the rule above picks.

    Example:
        >>> import torch
        >>> from dnwgraph import WiringConv, block_dag
        >>> small = WiringConv(block_dag([4, 4]), ratio=4).plan()
        >>> x = torch.zeros(1)
        >>> kernel_for("auto", small, x).name, kernel_for("sparse", small, x).name
        ('dense', 'sparse')
    """
    if impl != AUTO:
        return KERNELS.get(impl)
    if x.device.type == "cpu" and plan.num_nodes * plan.num_src <= DENSE_ELEMENTS_CPU:
        return KERNELS.get("dense")
    return KERNELS.get("sparse")
