r"""Edge-selection strategies behind one interface, and their registry.

A :class:`Selection` answers two questions for a :class:`~dnwgraph.WiringConv`:

* **which candidate edges are used in the forward pass** (:meth:`Selection.forward` returns a
  boolean mask over the candidates), and
* **which candidates receive a gradient** (:attr:`Selection.straight_through`): every candidate
  (DNW's straight-through rule :math:`\partial L/\partial w_{uv} = \langle x_u,
  \partial L/\partial \mathrm{out}_v\rangle`), or only the edges that were used.

=================  =========================================================  ================
name               forward uses                                               gradient to
=================  =========================================================  ================
``dnw``            top-k by :math:`|w|`, re-chosen every step                 every candidate
``dnw_no_update``  top-k by :math:`|w|`, re-chosen every step                 used edges
``random``         a fixed random mask with the same budget (seeded)          used edges
``complete``       every candidate                                            every candidate
``fixed``          a frozen mask: given, or the top-k of the weights when     used edges
                   first used (fine-tuning, lottery-ticket baselines)
``td``             training: top-k plus each other edge kept with             used edges
                   probability :math:`1-\rho`; eval: top-k (targeted dropout)
``reg_td``         ``td`` with a per-node budget (``scope="per_node"``)       used edges
=================  =========================================================  ================

The other wiring-learning methods (``rigl``, ``set``, ``gmp``, ``snip``, ``edge_popup``) are in
:mod:`dnwgraph.select.methods`; ``docs/methods.md`` compares them.

A strategy is told of its layer once (:meth:`Selection.attach`), says per weight state whether
the backward pass gives every candidate a gradient (:meth:`Selection.all_gradients`), and may
route the gradient of the edge weights to parameters of its own (:meth:`Selection.weight`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor

from dnwgraph.errors import DNWGraphError, DNWGraphTypeError, NonFiniteError
from dnwgraph.registry import Registry
from dnwgraph.select.topk import (
    check_ratio,
    check_scope,
    global_topk,
    graph_topk_mask,
    node_budget,
    resolve_k,
    topk_mask,
)
from dnwgraph.typing import Ratio, Scope


class SelectionHost(Protocol):
    """What a :class:`Selection` may read of the layer it is attached to (a
    :class:`~dnwgraph.WiringConv`)."""

    edge_weight: Tensor  # [E], the layer's learned weights
    edge_index: Tensor  # [2, E]
    num_nodes: int
    grad_every: int


class UnknownOptionError(DNWGraphTypeError):
    """A keyword option that a selection strategy does not take (:attr:`option` names it;
    ``create_model`` turns it into its own message with the close matches)."""

    def __init__(self, message: str, option: str) -> None:
        super().__init__(message)
        self.option = option


#: Selection strategies by name.
SELECTIONS: Registry[type[Selection]] = Registry("selection")


def register_selection(name: str) -> Callable[[type[Selection]], type[Selection]]:
    """Class decorator registering a :class:`Selection` subclass under ``name``.

    A strategy subclasses :class:`Selection`, sets :attr:`Selection.straight_through` and
    implements ``forward(edge_weight) -> BoolTensor [E]``; decorated, it is available by name
    to :class:`~dnwgraph.WiringConv` and to every model's ``selection=`` argument.
    """

    def wrap(cls: type[Selection]) -> type[Selection]:
        SELECTIONS.register(name, cls)
        cls.name = name
        return cls

    return wrap


def list_selections() -> list[str]:
    """Names of the registered selection strategies.

    Examples:
        >>> "dnw" in list_selections()
        True
    """
    return SELECTIONS.list()


def selection_options(name: str) -> list[str]:
    """The keyword options of the selection strategy registered as ``name`` (those of its
    class and of every base up to :class:`Selection`; the budget and the edges excluded).

    Raises:
        ValueError: for an unknown name (the message lists the valid ones).

    Examples:
        >>> selection_options("dnw"), selection_options("random")
        (['scope'], ['scope', 'seed'])
    """
    given = {"self", "ratio", "target", "num_nodes"}
    found: set[str] = set()
    for cls in SELECTIONS.get(name).__mro__:
        init = vars(cls).get("__init__")
        if init is not None and issubclass(cls, Selection):
            found.update(
                n
                for n, p in inspect.signature(init).parameters.items()
                if p.kind is p.KEYWORD_ONLY and n not in given
            )
    return sorted(found)


def create_selection(
    name: str,
    ratio: Ratio,
    *,
    target: Tensor,
    num_nodes: int,
    scope: Scope | None = None,
    **options: Any,
) -> Selection:
    """Build the selection strategy registered as ``name``.

    Args:
        name (str): one of :func:`list_selections`.
        ratio (int or float): the edge budget (int: edges kept, float: fraction kept).
        target (LongTensor): target node of every candidate edge, shape ``[E]``.
        num_nodes (int): number of nodes.
        scope (str, optional): ``"global"`` or ``"per_node"``; ``None`` takes the strategy's
            default.
        **options: strategy-specific options (``seed`` for ``random``, ``mask`` for
            ``fixed``, ``drop_rate`` for ``td``).

    Raises:
        ValueError: for an unknown name or option (the message lists the valid ones) or a
            bad budget.

    Examples:
        >>> sel = create_selection("dnw", 2, target=torch.tensor([1, 1, 2]), num_nodes=3)
        >>> sel(torch.tensor([0.1, -0.9, 0.5])).tolist()
        [False, True, True]
    """
    cls = SELECTIONS.get(name)
    valid = selection_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise UnknownOptionError(
            f"selection {name!r} has no option {unknown[0]!r} (valid: {', '.join(valid)})",
            unknown[0],
        )
    kwargs: dict[str, Any] = dict(options)
    if scope is not None:
        kwargs["scope"] = scope
    return cls(ratio, target=target, num_nodes=num_nodes, **kwargs)


class Selection(torch.nn.Module):
    r"""Base class: a budget of edges and a rule for choosing them.

    Args:
        ratio (int or float): ``int`` keeps that many edges, ``float`` in (0, 1] keeps that
            fraction; with ``scope="per_node"`` the budget is per target node.
        target (LongTensor): target node of every candidate edge, shape ``[E]``.
        num_nodes (int): number of nodes :math:`N`.
        scope (str, optional): ``"global"`` or ``"per_node"``. (default: ``"global"``)

    Shapes:
        - **input:** edge weights :math:`[E]`
        - **output:** boolean mask of the edges used, :math:`[E]`

    Examples:
        >>> sel = create_selection("dnw", 2, target=torch.tensor([2, 2, 3]), num_nodes=4)
        >>> sel(torch.tensor([0.5, -2.0, 1.0])).tolist(), sel.k, sel.straight_through
        ([False, True, True], 2, True)
    """

    name: str = ""
    #: Unselected candidates may receive the straight-through gradient (at the weight states
    #: :meth:`all_gradients` names).
    straight_through: bool = False
    #: Every ``grad_every``-th weight state gets the all-candidate gradient (the layer's
    #: option, read by :meth:`attach`).
    grad_every: int = 1
    #: The strategy only reads the weights it is given: it changes them nowhere, hooks no
    #: gradient, and :meth:`weight` is the identity, so it may choose over a concatenation of
    #: several layers' weights (``sparsify(..., scope="model")``).
    reads_weights_only: bool = True

    def __init__(
        self,
        ratio: Ratio,
        *,
        target: Tensor,
        num_nodes: int,
        scope: Scope = "global",
    ) -> None:
        super().__init__()
        self.ratio = ratio = check_ratio(ratio)
        self.scope: Scope = check_scope(scope)
        self.num_nodes = num_nodes
        self.num_edges = int(target.numel())
        self.register_buffer("target", target.long(), persistent=False)
        self._threshold_hint: float | None = None  # last k-th largest |w| (speed only)
        self.budget: int | Tensor
        if scope == "global":
            self.budget = resolve_k(ratio, self.num_edges)
            self.k = self.budget
        else:
            in_degree = torch.bincount(self.target, minlength=num_nodes)
            self.register_buffer("_node_budget", node_budget(ratio, in_degree), persistent=False)
            self.budget = self._node_budget
            self.k = int(self._node_budget.sum())

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Selection:
        super()._apply(fn, *args, **kwargs)
        if self.scope == "per_node":  # keep the alias on the buffer's device
            self.budget = self._node_budget
        return self

    def topk(self, edge_weight: Tensor) -> Tensor:
        """Mask of the top-k edges by :math:`|w|` under this strategy's budget and scope.

        The previous call's threshold is the hint of the next (weights move little per step:
        the selection then runs over a narrow band of scores); the mask does not depend on it.
        In compiled, exported or traced code, with the global scope, the same mask comes from
        tensor operations only (:func:`~dnwgraph.select.graph_topk_mask`: no hint, no check).

        Raises:
            NonFiniteError: a weight is NaN or infinite (a NaN would silently drop out of the
                top-k and leave fewer than ``k`` edges).
        """
        score = edge_weight.detach().abs()
        traced = torch.compiler.is_compiling() or torch.jit.is_tracing()
        if traced and self.scope == "global" and isinstance(self.budget, int):
            return graph_topk_mask(score, self.budget)
        # one pass when all is well: a NaN or an infinity makes the sum non-finite (so may a
        # sum of huge finite weights, which the element-wise test then clears); float32 at
        # least (a half sum overflows soon), float64 only for float64 (some GPUs have none)
        total = score.sum(dtype=torch.promote_types(score.dtype, torch.float32))
        finite = None if math.isfinite(float(total)) else torch.isfinite(score)
        if finite is not None and not bool(finite.all()):
            bad = int((~finite).sum())
            raise NonFiniteError(
                f"{bad} of {score.numel()} edge weights are NaN or infinite, so their top-{self.k} "
                "is undefined (did the training diverge? lower the learning rate or clip the "
                "gradients)"
            )
        if self.scope == "global" and isinstance(self.budget, int) and self.budget < score.numel():
            mask, self._threshold_hint = global_topk(score, self.budget, self._threshold_hint)
            return mask
        return topk_mask(score, self.budget, scope=self.scope, target=self.target)

    def forward(self, edge_weight: Tensor) -> Tensor:
        raise NotImplementedError

    def attach(self, layer: SelectionHost) -> None:
        """Called once by the layer that owns this strategy, after its weights are
        initialised (``WiringConv.__init__``); reads the layer's ``grad_every``.  A strategy
        may also change the layer's weights here (edge-popup's signed constants) or install a
        gradient hook on them (:class:`~dnwgraph.select.ScheduledSelection`)."""
        self.grad_every = int(layer.grad_every)

    def detach(self) -> None:
        """Undo the hooks of :meth:`attach`: called when the layer stops using this strategy
        (:func:`~dnwgraph.unsparsify`, or a :func:`~dnwgraph.sparsify` refused after it was
        attached), so that the plain weights train as before. Default: nothing to undo."""

    def all_gradients(self, step: int) -> bool:
        r"""Whether the backward pass of the layer's weight state ``step`` (``1`` for the
        first weights it selects with, one more per optimizer step) gives every candidate
        edge its straight-through gradient :math:`\langle x_u, \partial L/\partial
        \mathrm{out}_v\rangle`; otherwise only the selected edges get a gradient.

        Default: :attr:`straight_through` strategies at every ``grad_every``-th state (DNW:
        every state).  A strategy with a clock of its own (saved with it, so that a resumed
        run continues exactly) may ignore ``step``.
        """
        return self.straight_through and (step - 1) % self.grad_every == 0

    def weight(self, edge_weight: Tensor) -> Tensor:
        """The edge weights as the aggregation differentiates them: ``edge_weight`` itself.
        A strategy that trains something else through the weights (edge-popup's scores)
        returns a tensor with the values of ``edge_weight`` whose gradient reaches it."""
        return edge_weight

    def cache_key(self) -> tuple[Any, ...] | None:
        """What the mask depends on besides the weights: values and tensors that the
        layer's :class:`~dnwgraph.nn.kernels.PlanCache` copies and compares by value (public
        state only; ``()`` when the weights alone decide).

        ``None`` means the mask must be recomputed on every call (random in training).
        """
        return ()

    def extra_repr(self) -> str:
        return f"k={self.k}, num_edges={self.num_edges}, scope={self.scope!r}"


@register_selection("dnw")
class DNW(Selection):
    r"""Discovering Neural Wirings: top-k by :math:`|w|` forward, straight-through backward.

    Every candidate edge :math:`(u, v)` receives :math:`\langle x_u, \partial L/\partial
    \mathrm{out}_v\rangle`, so an unused edge can grow and swap in.
    """

    straight_through = True

    def forward(self, edge_weight: Tensor) -> Tensor:
        return self.topk(edge_weight)


@register_selection("dnw_no_update")
class DNWNoUpdate(Selection):
    """Top-k by :math:`|w|` every step, but unused edges receive no gradient (ablation)."""

    def forward(self, edge_weight: Tensor) -> Tensor:
        return self.topk(edge_weight)


class _FrozenMask(Selection):
    """A strategy whose mask is a persistent buffer (saved in checkpoints)."""

    mask: Tensor

    def cache_key(self) -> tuple[Any, ...] | None:
        return (self.mask,)

    def forward(self, edge_weight: Tensor) -> Tensor:
        return self.mask


@register_selection("random")
class RandomMask(_FrozenMask):
    """A fixed random mask with the same budget and scope as DNW (the random-graph baseline).

    Args:
        seed (int, optional): seed of the mask; the global RNG is not touched. (default: ``0``)
    """

    def __init__(self, ratio: Ratio, *, seed: int = 0, **kwargs: Any) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise DNWGraphError(f"'seed' must be an int in [0, 2**63) (got {seed!r})")
        super().__init__(ratio, **kwargs)
        gen = torch.Generator().manual_seed(seed)
        score = torch.rand(self.num_edges, generator=gen)
        self.register_buffer(
            "mask", topk_mask(score, self.budget, scope=self.scope, target=self.target)
        )
        self.seed = seed


@register_selection("complete")
class Complete(Selection):
    """Every candidate edge is used (the complete-graph baseline); ``ratio`` is checked as
    any budget (a mistake is not hidden), then ignored."""

    straight_through = True

    def __init__(self, ratio: Ratio = 1.0, **kwargs: Any) -> None:
        super().__init__(1.0, **{**kwargs, "scope": "global"})
        resolve_k(ratio, self.num_edges)
        self.k = self.num_edges

    def forward(self, edge_weight: Tensor) -> Tensor:
        return torch.ones(self.num_edges, dtype=torch.bool, device=edge_weight.device)


@register_selection("fixed")
class Fixed(_FrozenMask):
    """A frozen mask, for fine-tuning a discovered wiring and lottery-ticket baselines.

    Once the mask is set (given, frozen, or loaded from a state dict), it is the budget:
    :attr:`k` is its number of edges, whatever ``ratio`` said.

    Args:
        mask (BoolTensor, optional): the edges to use, shape ``[E]``.  If ``None``, the top-k
            of the weights at the first forward pass are frozen (or call :meth:`freeze`).

    Examples:
        >>> sel = create_selection("fixed", 2, target=torch.tensor([1, 1, 2, 2]), num_nodes=3,
        ...                        mask=torch.ones(4, dtype=torch.bool))
        >>> sel.k, int(sel(torch.randn(4)).sum())
        (4, 4)
    """

    @property
    def k(self) -> int:  # type: ignore[override]
        """Edges used: the mask's count once it is set, else the budget of ``ratio``."""
        if "frozen" in self._buffers and bool(self.frozen):
            return int(self.mask.sum())
        return self._k

    @k.setter
    def k(self, value: int) -> None:
        self._k = value

    def __init__(self, ratio: Ratio, *, mask: Tensor | None = None, **kwargs: Any) -> None:
        super().__init__(ratio, **kwargs)
        self.register_buffer("frozen", torch.tensor(mask is not None))
        if mask is None:
            mask = torch.zeros(self.num_edges, dtype=torch.bool)
        elif not isinstance(mask, Tensor):
            raise DNWGraphTypeError(
                f"'mask' must be a BoolTensor of shape [{self.num_edges}] "
                f"(got {type(mask).__name__} {mask!r:.40})"
            )
        elif mask.shape != (self.num_edges,) or mask.dtype != torch.bool:
            raise DNWGraphError(
                f"'mask' must be a BoolTensor of shape [{self.num_edges}] "
                f"(got {mask.dtype} {tuple(mask.shape)})"
            )
        self.register_buffer("mask", mask.clone())

    def cache_key(self) -> tuple[Any, ...] | None:
        return (self.mask, self.frozen)

    @torch.no_grad()
    def freeze(self, edge_weight: Tensor) -> None:
        """Freeze the current top-k of ``edge_weight`` as the mask."""
        self.mask.copy_(self.topk(edge_weight))
        self.frozen.fill_(True)

    def forward(self, edge_weight: Tensor) -> Tensor:
        if not bool(self.frozen):
            self.freeze(edge_weight)
        return self.mask


@register_selection("td")
class TargetedDropout(Selection):
    r"""Targeted dropout (Gomez et al., 2019) as in the DNW ablations.

    In training, every edge outside the top-k is dropped with probability :math:`\rho`
    (``drop_rate``) and used otherwise; in evaluation only the top-k is used.  Used edges get
    the ordinary gradient.  Unlike the reference code, the sign of the weights is kept.

    Args:
        drop_rate (float, optional): :math:`\rho`; ``None`` takes the fraction of candidates
            outside the budget, :math:`1 - k/E` (the reference code's default).
    """

    def __init__(self, ratio: Ratio, *, drop_rate: float | None = None, **kwargs: Any) -> None:
        super().__init__(ratio, **kwargs)
        if drop_rate is None:
            drop_rate = 1.0 - self.k / self.num_edges
        number = isinstance(drop_rate, (int, float)) and not isinstance(drop_rate, bool)
        if not number or not 0.0 <= drop_rate <= 1.0:
            raise DNWGraphError(f"'drop_rate' must be a float in [0, 1] (got {drop_rate!r})")
        self.drop_rate = float(drop_rate)

    def cache_key(self) -> tuple[Any, ...] | None:
        return None if self.training else ()

    def forward(self, edge_weight: Tensor) -> Tensor:
        mask = self.topk(edge_weight)
        if self.training:
            keep = torch.rand(self.num_edges, device=edge_weight.device) >= self.drop_rate
            mask = mask | keep
        return mask


@register_selection("reg_td")
class RegularTargetedDropout(TargetedDropout):
    """Targeted dropout with a per-node budget (the reference code's "regular" variant)."""

    def __init__(self, ratio: Ratio, *, scope: Scope = "per_node", **kwargs: Any) -> None:
        super().__init__(ratio, scope=scope, **kwargs)
