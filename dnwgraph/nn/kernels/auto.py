r"""``impl="auto"``: the backend of each aggregation call, chosen by size and device.

Placeholder rule, calibrated by ``benchmarks/bench_auto.py``.
"""

from __future__ import annotations

from torch import Tensor

from dnwgraph.nn.kernels.backends import KERNELS, Kernel
from dnwgraph.nn.kernels.plan import AggregationPlan

#: The backends a layer accepts: every registered kernel, and ``"auto"``.
AUTO = "auto"

#: Largest dense matrix (output rows x source rows) the CPU runs densely.
DENSE_ELEMENTS_CPU = 2**14


def kernel_for(impl: str, plan: AggregationPlan, x: Tensor) -> Kernel:
    """The kernel that computes ``plan`` on ``x``: ``impl`` itself, or for ``"auto"`` the
    one the cost model expects to be fastest.

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
