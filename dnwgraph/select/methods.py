r"""The wiring-learning methods compared with DNW, on the same candidate edges and budget.

=================  ===============================================================  ==========
name               rule                                                             weights
=================  ===============================================================  ==========
``dnw_periodic``   DNW with the top-k by :math:`|w|` re-chosen every ``frequency``    all
                   steps (straight-through to every candidate at every step)        trained
``rigl``           every ``frequency`` steps drop the fraction
                   :math:`\tfrac{\alpha}{2}(1 + \cos(\pi t / T_{end}))` of the      active
                   active edges with the smallest :math:`|w|`, grow as many by      trained
                   the largest :math:`|\partial L/\partial w|` (Evci et al. 2020)
``set``            the same schedule, regrowth uniformly at random (Mocanu et       active
                   al. 2018)                                                        trained
``gmp``            prune the smallest :math:`|w|` on Zhu & Gupta's (2017) cubic     active
                   schedule from ``begin_step`` to ``end_step``                     trained
``snip``           once, at the first step: top-k of                                active
                   :math:`|w \cdot \partial L/\partial w|` (Lee et al. 2019)        trained
``edge_popup``     top-k of a learned score per edge, straight-through to the       never
                   scores (Ramanujan et al. 2020)                                   trained
=================  ===============================================================  ==========

Grown edges start at zero; the optimizer's own state of an edge (momentum) is not reset
(the selection does not see the optimizer).  ``docs/methods.md`` has the rules in full.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.nn import Parameter

from dnwgraph.errors import DNWGraphError
from dnwgraph.select.dynamic import ScheduledSelection, check_fraction, check_step
from dnwgraph.select.strategies import Selection, SelectionHost, register_selection
from dnwgraph.select.topk import node_budget, resolve_k, topk_mask
from dnwgraph.typing import Ratio


def _start_at_zero(edge_weight: Tensor, old: Tensor, new: Tensor) -> None:
    """Set the weights of the edges in ``new`` but not in ``old`` to zero (in place)."""
    edge_weight.masked_fill_(new & ~old, 0.0)


@register_selection("rigl")
class RigL(ScheduledSelection):
    r"""RigL (Evci et al., *Rigging the Lottery*, ICML 2020, https://arxiv.org/abs/1911.11134).

    At every step :math:`t` with :math:`t \bmod \Delta T = 0` (and :math:`t < T_{end}` when
    ``end_step`` is given) drop the fraction

    .. math::
        f(t) = \frac{\alpha}{2}\Bigl(1 + \cos\frac{\pi t}{T_{end}}\Bigr)

    (:math:`\alpha` without ``end_step``) of the active edges with the smallest :math:`|w|`,
    and grow as many edges outside the kept ones with the largest
    :math:`|\partial L/\partial w|` of step :math:`t - 1` (DNW's straight-through backward
    gives it at that step only; no extra pass); grown edges start at zero.  Per node with
    ``scope="per_node"``.  The mask of step 0 is the top-k of the initial :math:`|w|` (a random
    mask for random weights).

    Args:
        frequency (int, optional): :math:`\Delta T`. (default: ``100``)
        drop_fraction (float, optional): :math:`\alpha`. (default: ``0.3``)
        end_step (int, optional): :math:`T_{end}` (paper: 75 % of training); ``None``: update
            with :math:`\alpha` for ever. (default: ``None``)

    Raises:
        ValueError: ``frequency < 1``, ``drop_fraction`` outside [0, 1], ``end_step < 1``.

    Examples:
        >>> sel = RigL(2, target=torch.tensor([1, 1, 2, 2]), num_nodes=3, frequency=10)
        >>> sel.wants_gradients(9), sel.wants_gradients(10), round(sel.fraction_at(10), 2)
        (True, False, 0.3)
    """

    needs_gradients = True

    def __init__(
        self,
        ratio: Ratio,
        *,
        frequency: int = 100,
        drop_fraction: float = 0.3,
        end_step: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(ratio, **kwargs)
        self.frequency = check_step(frequency, "frequency", 1)
        self.drop_fraction = check_fraction(drop_fraction, "drop_fraction")
        self.end_step = None if end_step is None else check_step(end_step, "end_step", 1)

    def updates_at(self, step: int) -> bool:
        """Whether the mask changes at weight state ``step``."""
        end = self.end_step
        return step > 0 and step % self.frequency == 0 and (end is None or step < end)

    def fraction_at(self, step: int) -> float:
        """:math:`f(t)`, the fraction of the active edges dropped at ``step``."""
        if self.end_step is None:
            return self.drop_fraction
        return self.drop_fraction / 2 * (1 + math.cos(math.pi * step / self.end_step))

    def wants_gradients(self, step: int) -> bool:
        return self.updates_at(step + 1)

    def grow_score(self, edge_weight: Tensor, step: int, grad: Tensor) -> Tensor:
        """The score of growth: :math:`|\\partial L/\\partial w|`."""
        return grad.abs()

    def update(self, edge_weight: Tensor, step: int, grad: Tensor | None) -> None:
        if not self.updates_at(step) or (self.needs_gradients and grad is None):
            return
        score = self.grow_score(edge_weight, step, grad)  # type: ignore[arg-type]
        new = self.regrow(edge_weight.detach().abs(), score, self.fraction_at(step))
        _start_at_zero(edge_weight, self.mask, new)
        self.mask.copy_(new)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, frequency={self.frequency}, "
            f"drop_fraction={self.drop_fraction}, end_step={self.end_step}"
        )


@register_selection("set")
class SET(RigL):
    r"""Sparse Evolutionary Training (Mocanu et al., Nat. Commun. 2018,
    https://doi.org/10.1038/s41467-018-04316-3): :class:`RigL`'s schedule, with the grown
    edges drawn uniformly at random among those outside the kept ones (no gradient needed).

    Args:
        seed (int, optional): seed of the draws; the draw of step :math:`t` depends on
            ``(seed, t)`` only (the global RNG is not touched; every process draws the same).
            (default: ``0``)
        **kwargs: :class:`RigL`'s options.
    """

    needs_gradients = False

    def __init__(self, ratio: Ratio, *, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(ratio, **kwargs)
        self.seed = check_step(seed, "seed", 0)

    def grow_score(self, edge_weight: Tensor, step: int, grad: Tensor | None) -> Tensor:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        return torch.rand(self.num_edges, generator=gen).to(edge_weight.device)


@register_selection("gmp")
class GMP(ScheduledSelection):
    r"""Gradual magnitude pruning (Zhu & Gupta, *To prune, or not to prune*, 2017,
    https://arxiv.org/abs/1710.01878).

    The mask starts with the top-:math:`k_i` edges by :math:`|w|` (``initial_ratio``; all
    candidates by default) and, at steps :math:`t_0, t_0 + \Delta t, \dots` up to
    :math:`t_1` (and at :math:`t_1`), keeps the

    .. math::
        k_t = \operatorname{round}\Bigl(k + (k_i - k)\bigl(1 - \tfrac{t - t_0}{t_1 - t_0}
        \bigr)^3\Bigr)

    active edges with the largest :math:`|w|` (the cubic sparsity schedule in edge counts);
    pruned edges stay pruned.  From :math:`t_1` on the mask has the budget :math:`k`.

    Args:
        begin_step (int, optional): :math:`t_0`. (default: ``0``)
        end_step (int, optional): :math:`t_1 > t_0`. (default: ``1000``)
        frequency (int, optional): :math:`\Delta t`. (default: ``100``)
        initial_ratio (int or float, optional): :math:`k_i`, at least the budget.
            (default: ``1.0``)

    Raises:
        ValueError: ``end_step <= begin_step``, ``frequency < 1``, or an ``initial_ratio``
            below the budget.

    Examples:
        >>> sel = GMP(2, target=torch.tensor([1, 1, 2, 2, 3]), num_nodes=4, end_step=3,
        ...           frequency=1)
        >>> [sel.kept_at(t) for t in range(4)]
        [5, 3, 2, 2]
    """

    def __init__(
        self,
        ratio: Ratio,
        *,
        begin_step: int = 0,
        end_step: int = 1000,
        frequency: int = 100,
        initial_ratio: Ratio = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(ratio, **kwargs)
        self.begin_step = check_step(begin_step, "begin_step", 0)
        self.end_step = check_step(end_step, "end_step", 0)
        if self.end_step <= self.begin_step:
            raise DNWGraphError(
                f"'end_step' must be after 'begin_step'={begin_step} (got {end_step})"
            )
        self.frequency = check_step(frequency, "frequency", 1)
        self.initial_ratio = initial_ratio
        self.initial_budget: Any
        if self.scope == "global":
            self.initial_budget = resolve_k(initial_ratio, self.num_edges, name="initial_ratio")
        else:
            in_degree = torch.bincount(self.target, minlength=self.num_nodes)
            self.initial_budget = node_budget(initial_ratio, in_degree, name="initial_ratio")
        if int(torch.as_tensor(self.initial_budget).sum()) < self.k:
            raise DNWGraphError(
                f"'initial_ratio' must keep at least the budget of {self.k} edges "
                f"(got {initial_ratio!r})"
            )

    def kept_at(self, step: int) -> Any:
        """:math:`k_t`: edges kept after the pruning of ``step`` (an int, or per node)."""
        p = min(max((step - self.begin_step) / (self.end_step - self.begin_step), 0.0), 1.0)
        k_i, k = self.initial_budget, self.budget
        if isinstance(k, int):
            return round(k + (k_i - k) * (1 - p) ** 3)
        return torch.round(k + (k_i.to(k) - k) * (1 - p) ** 3).long()

    def initial_mask(self, edge_weight: Tensor) -> Tensor:
        score = edge_weight.detach().abs()
        budget = self.initial_budget
        if not isinstance(budget, int):
            budget = budget.to(score.device)
        return topk_mask(score, budget, scope=self.scope, target=self.target)

    def updates_at(self, step: int) -> bool:
        """Whether the mask changes at weight state ``step``."""
        if not self.begin_step <= step <= self.end_step:
            return False
        return (step - self.begin_step) % self.frequency == 0 or step == self.end_step

    def update(self, edge_weight: Tensor, step: int, grad: Tensor | None) -> None:
        if not self.updates_at(step):
            return
        score = torch.where(self.mask, edge_weight.detach().abs(), -math.inf)
        self.mask.copy_(topk_mask(score, self.kept_at(step), scope=self.scope, target=self.target))

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, begin_step={self.begin_step}, end_step={self.end_step}, "
            f"frequency={self.frequency}"
        )


@register_selection("snip")
class SNIP(ScheduledSelection):
    r"""SNIP (Lee et al., *Single-shot Network Pruning*, ICLR 2019,
    https://arxiv.org/abs/1810.02340): one shot at the first training step.

    Until its first backward pass the layer uses every candidate; that pass gives every
    candidate :math:`g = \partial L/\partial w` and leaves the weights at their initial values
    (the optimizer sees a zero gradient for them; restored to them if weight decay moved them
    all the same); the next forward pass chooses the top-k of
    the connection sensitivity :math:`|w_0 \cdot g|`, fixed from then on (the weights trained
    inside it).

    Examples:
        >>> sel = SNIP(1, target=torch.tensor([1, 1]), num_nodes=2)
        >>> sel(torch.tensor([0.5, -1.0])).tolist()  # step 0: every candidate
        [True, True]
    """

    needs_gradients = True
    chosen: Tensor

    def __init__(self, ratio: Ratio, **kwargs: Any) -> None:
        super().__init__(ratio, **kwargs)
        self.register_buffer("chosen", torch.tensor(False))

    def initial_mask(self, edge_weight: Tensor) -> Tensor:
        return torch.ones(self.num_edges, dtype=torch.bool, device=edge_weight.device)

    def wants_gradients(self, step: int) -> bool:
        return not bool(self.chosen)

    def optimizer_gradient(self, grad: Tensor) -> Tensor:
        return torch.zeros_like(grad)  # pruning at initialisation: the weights wait

    def forward(self, edge_weight: Tensor) -> Tensor:
        # the weights do not move at step 0, so the choice cannot wait for a new state
        if self.pending is not None and not bool(self.chosen):
            grad = self.take_pending(edge_weight)
            with torch.no_grad():
                # w0, the weights of step 0: an optimizer with weight decay moved them
                # despite their zero gradient (Adam by about its learning rate); back to w0
                w0 = edge_weight.detach() if self.seen is None else self.seen.to(edge_weight)
                edge_weight.copy_(w0)
                self.mask.copy_(self.topk(w0.to(grad) * grad))
                self.chosen.fill_(True)
        return super().forward(edge_weight)

    def update(self, edge_weight: Tensor, step: int, grad: Tensor | None) -> None:
        pass  # chosen once, in forward


@register_selection("edge_popup")
class EdgePopup(Selection):
    r"""Edge-popup (Ramanujan et al., *What's Hidden in a Randomly Weighted Neural
    Network?*, CVPR 2020, https://arxiv.org/abs/1911.13299).

    The edge weights keep their initial values and are never trained (``edge_weight`` no
    longer requires grad); a score :math:`s_e` per candidate (a parameter of this module,
    initialised :math:`\mathcal{U}(-b, b)` with :math:`b` the largest initial :math:`|w|`)
    chooses the top-k by :math:`|s|` at every step, and the backward pass is
    straight-through to every score (as the reference code, through :math:`|s|`):

    .. math::
        \frac{\partial L}{\partial s_{uv}} = \operatorname{sign}(s_{uv})\, w_{uv}\,
        \langle x_u, \partial L/\partial \mathrm{out}_v \rangle

    Args:
        signed_constant (bool, optional): set every weight to :math:`\pm\sigma` with a random
            sign, :math:`\sigma = \sqrt{2}\, b` (the Kaiming standard deviation of the layer's
            fan-in), the paper's best initialisation. (default: ``False``)
        seed (int, optional): seed of the scores and signs. (default: ``0``)

    Examples:
        >>> sel = EdgePopup(1, target=torch.tensor([1, 1]), num_nodes=2)
        >>> sorted(n for n, _ in sel.named_parameters())
        ['score']
    """

    straight_through = True
    reads_weights_only = False  # attach() sets the weights; weight() routes to the scores

    def __init__(
        self, ratio: Ratio, *, signed_constant: bool = False, seed: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(ratio, **kwargs)
        if not isinstance(signed_constant, bool):
            raise DNWGraphError(f"'signed_constant' must be a bool (got {signed_constant!r})")
        self.signed_constant = signed_constant
        self.seed = check_step(seed, "seed", 0)
        self.score = Parameter(torch.zeros(self.num_edges))

    def attach(self, layer: SelectionHost) -> None:
        if layer.grad_every != 1:
            raise DNWGraphError(
                f"'grad_every' applies to dnw and complete; selection {self.name!r} trains "
                f"every score at every step (got grad_every={layer.grad_every})"
            )
        super().attach(layer)
        w = layer.edge_weight
        gen = torch.Generator().manual_seed(self.seed)
        bound = float(w.detach().abs().max()) if w.numel() else 1.0
        with torch.no_grad():
            score = (torch.rand(self.num_edges, generator=gen) * 2 - 1) * bound
            self.score.copy_(score)
            if self.signed_constant:
                sign = torch.randint(0, 2, (self.num_edges,), generator=gen) * 2 - 1
                w.copy_((sign * math.sqrt(2.0) * bound).to(w))
        w.requires_grad_(False)

    def forward(self, edge_weight: Tensor) -> Tensor:
        return self.topk(self.score)

    def cache_key(self) -> tuple[Any, ...] | None:
        return (self.score,)

    def weight(self, edge_weight: Tensor) -> Tensor:
        w = edge_weight.detach()
        a = self.score.abs().to(w.dtype)
        return w * (1 + a - a.detach())  # the values of w; gradient sign(s) w g to s


@register_selection("dnw_periodic")
class PeriodicDNW(ScheduledSelection):
    r"""DNW with the top-k re-chosen every ``frequency`` steps instead of every step.

    The forward pass of weight state :math:`t` uses the top-k by :math:`|w|` of state
    :math:`\Delta T \lfloor t / \Delta T \rfloor` (``frequency`` :math:`= \Delta T`); the
    backward pass gives every candidate DNW's straight-through gradient
    :math:`\langle x_u, \partial L/\partial \mathrm{out}_v\rangle` at every step, so the
    unused weights keep moving between two choices and the next choice sees where they went.
    ``frequency=1`` is ``dnw``.  Between two choices the wiring holds still (RigL's
    :math:`\Delta T`): an edge near the threshold cannot enter and leave the forward pass on
    alternate steps.

    Args:
        frequency (int, optional): :math:`\Delta T`, the steps between two choices.
            (default: ``100``, as :class:`RigL`)

    Raises:
        ValueError: ``frequency < 1``.

    Examples:
        >>> sel = PeriodicDNW(1, target=torch.tensor([1, 1]), num_nodes=2, frequency=10)
        >>> sel.straight_through, sel.all_gradients(3), sel.updates_at(10), sel.updates_at(11)
        (True, True, True, False)
    """

    def __init__(self, ratio: Ratio, *, frequency: int = 100, **kwargs: Any) -> None:
        super().__init__(ratio, **kwargs)
        self.frequency = check_step(frequency, "frequency", 1)
        self.straight_through = True  # no hook: the layer's backward gives every gradient

    def all_gradients(self, step: int) -> bool:
        return True

    def updates_at(self, step: int) -> bool:
        """Whether the top-k is chosen again at weight state ``step``."""
        return step % self.frequency == 0

    def update(self, edge_weight: Tensor, step: int, grad: Tensor | None) -> None:
        if self.updates_at(step):
            self.mask.copy_(self.topk(edge_weight))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, frequency={self.frequency}"
