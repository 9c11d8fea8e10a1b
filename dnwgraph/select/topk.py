"""Top-k edge selection by magnitude: the budget convention and deterministic masks.

The budget is always given as ``ratio: int | float``: an ``int`` keeps exactly that many edges,
a ``float`` in (0, 1] keeps that fraction of the candidates.  With ``scope="per_node"`` the
budget applies to the candidate in-edges of every target node separately (an in-degree
budget).

Ties are broken deterministically: among edges of equal score the one with the **lower edge
index** is kept, on every device and every run.  This keeps the wiring identical across the
processes of a distributed run and across resumed runs.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from dnwgraph._tracing import static_shape
from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.typing import Ratio, Scope

SCOPES: tuple[str, ...] = ("global", "per_node")


def check_scope(scope: str) -> Scope:
    """Return ``scope`` if it is a valid scope name, else raise a ``ValueError`` listing them."""
    if scope not in SCOPES:
        raise DNWGraphError(f"'scope' must be one of {list(SCOPES)} (got {scope!r})")
    return scope  # type: ignore[return-value]


def check_ratio(ratio: Ratio, name: str = "ratio") -> Ratio:
    """``ratio`` as a Python ``int`` or ``float``: a numpy integer scalar is an ``int`` (a
    count), a numpy floating scalar a ``float`` (a fraction); a ``bool`` (numpy's too), an
    array or a tensor is refused. Only the type is checked (:func:`resolve_k` checks the range).

    Raises:
        TypeError: another type.

    Examples:
        >>> import numpy as np
        >>> check_ratio(np.int64(3)), check_ratio(np.float32(0.5))
        (3, 0.5)
    """
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real):
        raise DNWGraphTypeError(
            f"'{name}' must be an int (edges to keep) or a float in (0, 1] (fraction to keep) "
            f"(got {type(ratio).__name__} {ratio!r})"
        )
    return int(ratio) if isinstance(ratio, numbers.Integral) else float(ratio)


def resolve_k(ratio: Ratio, num_edges: int, *, name: str = "ratio") -> int:
    r"""Turn a ``ratio`` into a number of edges to keep out of ``num_edges``.

    .. math::
        k = \begin{cases} \text{ratio} & \text{ratio is an int} \\
        \max(1, \operatorname{round}(\text{ratio} \cdot E)) & \text{ratio is a float in } (0, 1]
        \end{cases}

    Args:
        ratio (int or float): the budget.
        num_edges (int): number of candidate edges :math:`E`.
        name (str, optional): argument name used in error messages. (default: ``"ratio"``)

    Returns:
        int: :math:`k` with :math:`1 \le k \le E`.

    Raises:
        TypeError: if ``ratio`` is not an ``int`` or a ``float`` (numpy's integer and floating
            scalars count as such; ``bool`` is rejected: :func:`check_ratio`).
        ValueError: if an ``int`` is outside ``[1, E]`` or a ``float`` is outside ``(0, 1]``.

    Examples:
        >>> resolve_k(0.25, 8), resolve_k(3, 8)
        (2, 3)
    """
    ratio = check_ratio(ratio, name)
    if isinstance(ratio, int):
        if not 1 <= ratio <= num_edges:
            raise DNWGraphError(
                f"'{name}' as an int is the number of edges to keep and must be in "
                f"[1, {num_edges}] (got {ratio})"
            )
        return ratio
    if not (0.0 < ratio <= 1.0) or math.isnan(ratio):
        raise DNWGraphError(
            f"'{name}' as a float is the fraction of edges to keep and must be in (0, 1] "
            f"(got {ratio})"
        )
    return max(1, min(num_edges, round(ratio * num_edges)))


def node_budget(ratio: Ratio, in_degree: Tensor, *, name: str = "ratio") -> Tensor:
    r"""Per-node budget for ``scope="per_node"``: how many in-edges each target keeps.

    An ``int`` keeps :math:`\min(k, d_v)` in-edges of node :math:`v` with candidate in-degree
    :math:`d_v`; a ``float`` keeps :math:`\max(1, \operatorname{round}(r \cdot d_v))` of them
    (0 for nodes without candidates).

    Args:
        ratio (int or float): the budget.
        in_degree (LongTensor): candidate in-degree of every node, shape ``[num_nodes]``.

    Returns:
        LongTensor: budget per node, shape ``[num_nodes]``.

    Raises:
        ValueError: if an ``int`` exceeds the largest in-degree, or the ratio is out of range.

    Examples:
        >>> node_budget(0.5, torch.tensor([0, 2, 4])).tolist()
        [0, 1, 2]
    """
    ratio = check_ratio(ratio, name)
    max_deg = int(in_degree.max()) if in_degree.numel() else 0
    resolve_k(ratio, max(max_deg, 1), name=name)  # validates the range
    if isinstance(ratio, int):
        return in_degree.clamp(max=ratio)
    budget = torch.round(in_degree.double() * ratio).long().clamp(min=1)
    return torch.where(in_degree > 0, budget.clamp(max=in_degree), torch.zeros_like(budget))


def kth_largest(score: Tensor, k: int, hint: float | None = None) -> Tensor:
    r"""The ``k``-th largest value of ``score`` (1-D, ``1 <= k <= numel``), exactly.

    Without a hint: one selection over all entries (:func:`torch.kthvalue`, :math:`O(E)`).
    With ``hint``, a guess of the value (e.g. the previous step's, when the scores change a
    little per step): two comparison passes find a band :math:`(lo, hi]` around the hint that
    holds it, and the selection runs over the band only; the band is widened until it holds
    the value, or the full selection runs.  Same result either way.

    Example:
        >>> s = torch.tensor([0.5, 2.0, 1.0, 3.0])
        >>> kth_largest(s, 2).item(), kth_largest(s, 2, hint=1.9).item()
        (2.0, 2.0)
    """
    num = score.numel()
    if hint is not None and math.isfinite(hint) and hint > 0 and score.dtype.is_floating_point:
        width = 0.01
        for _ in range(3):
            lo, hi = hint * (1 - width), hint * (1 + width)
            above_hi = int((score > hi).sum())
            if above_hi < k:
                band_mask = score > lo
                above_lo = int(band_mask.sum())
                if above_lo >= k:
                    band = score[band_mask & (score <= hi)]
                    r = k - above_hi  # the value is the r-th largest of the band
                    return torch.kthvalue(band, band.numel() - r + 1).values
            width *= 8
    return torch.kthvalue(score, num - k + 1).values


def global_topk(score: Tensor, k: int, hint: float | None = None) -> tuple[Tensor, float]:
    """Mask of the ``k`` largest entries of a 1-D ``score`` (ties: lower index wins) and the
    ``k``-th largest value (a ``hint`` for the next call, see :func:`kth_largest`)."""
    threshold = kth_largest(score, k, hint)
    mask = score >= threshold
    if int(mask.sum()) != k:  # ties at the threshold beyond the budget: fill by index
        mask = score > threshold
        missing = k - int(mask.sum())
        if missing > 0:
            tied = torch.nonzero(score == threshold).view(-1)[:missing]
            mask[tied] = True
    return mask, float(threshold)


def graph_topk_mask(score: Tensor, k: int) -> Tensor:
    r"""The mask of :func:`topk_mask` (global scope, ties: lower index wins) from tensor
    operations only, for compiled, exported and traced graphs: no Python scalar is read from a
    tensor, so :func:`torch.compile` and :func:`torch.export.export` record it whole (eager
    code uses :func:`topk_mask`, whose hint makes repeated selections cheaper).

    With :math:`t` the ``k``-th largest score, the kept entries are those above :math:`t`
    and the first :math:`k - |\{e: s_e > t\}|` of those equal to it.

    Args:
        score (Tensor): scores ``[E]``.
        k (int): the budget, ``0 <= k``.

    Returns:
        BoolTensor: ``[E]``, ``min(k, E)`` entries set.

    Example:
        >>> graph_topk_mask(torch.tensor([3.0, 1.0, 1.0, 0.5]), 2).tolist()
        [True, True, False, False]
    """
    num = static_shape(score)[0]  # a choice that a trace fixes: not recorded
    if k >= num or k <= 0:
        return torch.full_like(score, k > 0, dtype=torch.bool)
    threshold = torch.kthvalue(score, num - k + 1).values
    above = score > threshold
    tied = score == threshold
    return above | (tied & (tied.cumsum(0) <= k - above.sum()))


def topk_mask(
    score: Tensor,
    k: int | Tensor,
    *,
    scope: Scope = "global",
    target: Tensor | None = None,
    hint: float | None = None,
) -> Tensor:
    r"""Boolean mask of the ``k`` largest entries of ``score`` (ties: lower index wins).

    With ``scope="global"``, ``k`` is an ``int`` and exactly ``k`` entries are kept.  With
    ``scope="per_node"``, ``k`` is a per-node budget ``[num_nodes]`` (see :func:`node_budget`)
    and ``target[e]`` names the node edge ``e`` points to; each node keeps its ``k[v]``
    highest-scoring in-edges.

    Args:
        score (Tensor): scores, shape ``[E]`` (usually :math:`|w|`).
        k (int or LongTensor): the budget.
        scope (str, optional): ``"global"`` or ``"per_node"``. (default: ``"global"``)
        target (LongTensor, optional): target node of every edge, shape ``[E]``; required for
            ``scope="per_node"``.
        hint (float, optional): a guess of the ``k``-th largest score (global scope), which
            makes the selection cheaper when close (:func:`kth_largest`); the mask is the same.

    Returns:
        BoolTensor: shape ``[E]``.

    Raises:
        DNWGraphTypeError: ``score`` not a tensor; ``k`` not an ``int`` (global scope) or
            ``k``/``target`` not tensors (per-node scope).
        DNWGraphError: ``score`` not 1-D, ``k < 0``, ``target`` not shaped like ``score``, or
            an unknown ``scope``.

    Examples:
        >>> topk_mask(torch.tensor([0.5, -2.0, 0.5, 1.0]).abs(), 2).tolist()
        [False, True, False, True]
        >>> topk_mask(torch.tensor([3.0, 1.0, 1.0, 0.5]), 2).tolist()  # tie: index 1 wins
        [True, True, False, False]
    """
    if not isinstance(score, Tensor):
        raise DNWGraphTypeError(f"'score' must be a tensor [E] (got {type(score).__name__})")
    if score.dim() != 1:
        raise DNWGraphError(f"'score' must have shape [E] (got {tuple(score.shape)})")
    if scope == "global":
        if isinstance(k, bool) or not isinstance(k, int):
            raise DNWGraphTypeError(
                f"scope='global' needs an int 'k' (got {type(k).__name__}); a per-node budget "
                "tensor goes with scope='per_node'"
            )
        num = score.numel()
        if k < 0:
            raise DNWGraphError(f"'k' must be >= 0 (got {k})")
        if k >= num:
            return torch.ones_like(score, dtype=torch.bool)
        if k == 0:
            return torch.zeros_like(score, dtype=torch.bool)
        # kth largest value (a selection, O(E); ~3x faster than topk for k in the tens of
        # thousands); everything strictly above it is in, ties are filled by index.
        return global_topk(score, k, hint)[0]
    if scope == "per_node":
        if not isinstance(k, Tensor) or not isinstance(target, Tensor):
            raise DNWGraphTypeError(
                "scope='per_node' needs a per-node budget tensor 'k' and a 'target' tensor "
                f"(got k: {type(k).__name__}, target: {type(target).__name__})"
            )
        if target.shape != score.shape:
            raise DNWGraphError(
                f"'target' must have the shape of 'score' [{score.numel()}] "
                f"(got {tuple(target.shape)})"
            )
        # Order edges by (target, score desc, index) with two stable sorts, then keep the
        # first budget[v] edges of every target's run.
        order = torch.sort(score, descending=True, stable=True).indices
        order = order[torch.sort(target[order], stable=True).indices]
        sorted_target = target[order]
        counts = torch.bincount(sorted_target, minlength=k.numel())
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(order.numel(), device=score.device) - starts[sorted_target]
        mask = torch.zeros_like(score, dtype=torch.bool)
        mask[order] = rank < k[sorted_target]
        return mask
    check_scope(scope)  # raises: the scope is neither of the two above
    raise AssertionError("unreachable")
