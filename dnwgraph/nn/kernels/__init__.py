r"""The kernel interface of the learned wiring: everything that makes
:math:`\mathrm{out} = Y + A_{\mathcal{A}} X` fast, behind one call.

Layers (:class:`~dnwgraph.WiringConv`, :class:`~dnwgraph.nn.LevelExecutor`) hold the maths:
the candidate edges, their weights and the selection.  They compute an aggregation with
:func:`aggregate` (or :func:`accumulate_` in place) and never touch what is below it:

* :mod:`.planner`: from the selected edges to the :class:`AggregationPlan` of a call
  (source group, output rows, gradient set), kept in the layer's :class:`PlanCache`;
* :mod:`.backends`: one :class:`Kernel` per backend in :data:`KERNELS` (``sparse``, ``scatter``,
  ``dense``), and :mod:`.auto` choosing among them for ``impl="auto"``;
* :mod:`.fused`, :mod:`.matmul`, :mod:`.sampled`: the fused sparse product and its
  straight-through edge gradient (CPU bag sum, torch's COO kernel, cuSPARSE CSR);
* :mod:`.compiled` and :mod:`.dispatch`: the adapters for :func:`torch.compile`,
  :func:`torch.jit.trace` and ``torch_geometric.explain``;
* :mod:`.chain`: the fused level chain of a static model and its memory reuse; deep chains
  pull each level's inputs from the outputs so far (:mod:`.pull`, plans in :mod:`.pull_plan`).

A new backend is a :class:`Kernel` registered in :data:`KERNELS`; the scatter and dense
backends are the oracles every other one is tested against.
"""

from dnwgraph.nn.kernels.backends import KERNELS, Kernel, effective_weight, gradient_set_weights
from dnwgraph.nn.kernels.cache import PlanCache, ValueKey
from dnwgraph.nn.kernels.chain import LevelChain, LinearPool
from dnwgraph.nn.kernels.dispatch import accumulate_, aggregate
from dnwgraph.nn.kernels.matmul import BagMatrix
from dnwgraph.nn.kernels.node_first import apply as apply_node_first
from dnwgraph.nn.kernels.node_first import hooked
from dnwgraph.nn.kernels.plan import AggregationPlan
from dnwgraph.nn.kernels.planner import Rows, SourceGroups, build_plan, candidate_order
from dnwgraph.nn.kernels.sampled import EdgeSet, as_range

# what the layers and models above and a user's backend need (an AggregationPlan holds
# EdgeSets and hands out BagMatrix operands); the rest is imported from its module
__all__ = [
    "aggregate",
    "accumulate_",
    "Rows",
    "SourceGroups",
    "build_plan",
    "candidate_order",
    "AggregationPlan",
    "EdgeSet",
    "BagMatrix",
    "PlanCache",
    "ValueKey",
    "Kernel",
    "KERNELS",
    "effective_weight",
    "gradient_set_weights",
    "LevelChain",
    "LinearPool",
    "as_range",
    "apply_node_first",
    "hooked",
]


def __dir__() -> list[str]:
    # the public API only, not the submodules imported so far
    return sorted({*__all__, *(n for n in globals() if n.startswith("__"))})
