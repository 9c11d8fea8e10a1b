r"""Train any model as a DNW-sparse network: :func:`sparsify` and :func:`unsparsify`.

The weight tensor of a Linear / Conv1d / Conv2d layer is a complete bipartite wiring between
its input and output units (for a convolution, one edge per kernel tap).  *Discovering Neural
Wirings* (Section 4.3, sparse ResNet-50) trains it like any other wiring: the forward pass
uses the top-k weights by magnitude,

.. math::
    \tilde W = W \odot M, \qquad M = \operatorname{topk}(|W|, k),

and the backward pass is straight-through, :math:`\partial L/\partial W = \partial L/\partial
\tilde W` for **every** weight, pruned or not, so a pruned weight can grow back.  The budget is
per layer (``scope="per_layer"``, :math:`k_\ell = \lceil r\,|W_\ell|\rceil`) or shared by all
sparsified layers of the model (``scope="model"``, :math:`k = \operatorname{round}(r \sum_\ell
|W_\ell|)`, chosen on the concatenated magnitudes).  Biases and normalisation layers stay
dense.

It is implemented with :mod:`torch.nn.utils.parametrize`: ``layer.weight`` becomes the masked
weight, the trainable tensor lives at ``layer.parametrizations.weight.original`` (so optimizers
built before or after :func:`sparsify` see the same ``Parameter``), and the ``state_dict`` keys
change accordingly (a model saved sparsified loads into a freshly sparsified one; PyTorch
pickles parametrized modules only through their ``state_dict``).
:func:`unsparsify` bakes the masks in and restores plain layers.  :func:`~dnwgraph.count_params`
and :func:`~dnwgraph.count_macs` count only the kept weights of a sparsified layer.

A layer's mask is kept while its weight keeps its values: the cache key is a copy of the weight
(:class:`~dnwgraph.nn.kernels.ValueKey`, the key of ``WiringConv``'s plan cache), compared at
every use, so an optimizer step, any in-place edit or ``load_state_dict`` selects again (the
sparsified weights are held twice in memory).  With ``scope="model"`` every mask depends on
every weight; hooks on the sparsified module make one forward pass compare them once.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.utils.hooks import RemovableHandle

from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.graph import Wiring
from dnwgraph.models.counting import Counter
from dnwgraph.nn.kernels import ValueKey
from dnwgraph.select import graph_topk_mask, resolve_k, topk_mask

#: Layer types :func:`sparsify` converts by default.
SPARSIFIABLE: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)
#: One budget for each layer, or one for the whole model ("per X": one budget for each X, as
#: ``WiringConv``'s ``scope="per_node"``; its ``"global"`` is one budget for the layer).
SCOPES: tuple[str, ...] = ("per_layer", "model")

Pattern = str | type[nn.Module]


def _weight(layer: nn.Module) -> Tensor:
    weight = layer.weight
    assert isinstance(weight, Tensor)
    return weight


class _TopKStraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, weight: Tensor, mask: Tensor) -> Tensor:  # type: ignore[override]
        return weight * mask

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return grad, None  # straight-through: every weight, pruned or not


class _GlobalBudget:
    """Shared state of ``scope="model"``: one top-k over all registered weights, recomputed
    when any of them changes (a :class:`~dnwgraph.nn.kernels.ValueKey` on all of them).

    Every layer's mask depends on every weight, so each use compares all of them; during a
    forward pass of the sparsified module (whose hooks open :meth:`ValueKey.hold
    <dnwgraph.nn.kernels.ValueKey.hold>`) the first use compares and the others trust it."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.members: list[TopKWeight] = []
        self.key = ValueKey()
        self._masks: list[Tensor] = []
        self._open: list[contextlib.AbstractContextManager[None]] = []
        self._hooks: list[RemovableHandle] = []

    def mask_for(self, member: TopKWeight, weight: Tensor) -> Tensor:
        weights = [m.current_weight(weight if m is member else None) for m in self.members]
        if not self._masks or not self.key.matches(weights):
            score = torch.cat([w.detach().abs().reshape(-1).to(weights[0].device) for w in weights])
            flat = topk_mask(score, self.k)
            sizes = [w.numel() for w in weights]
            self._masks = [
                m.view_as(w).to(w.device) for m, w in zip(flat.split(sizes), weights, strict=True)
            ]
            self.key.store(weights)
        return self._masks[self.members.index(member)]

    def invalidate(self) -> None:
        self.key.invalidate()
        self._masks = []

    def attach(self, module: nn.Module) -> None:
        """Hold the key during every forward pass of ``module`` (the sparsified model)."""
        self._hooks = [
            module.register_forward_pre_hook(self._enter),
            module.register_forward_hook(self._exit, always_call=True),
        ]

    def detach(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    def _enter(self, module: nn.Module, args: Any) -> None:
        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            return  # no cache to hold: the masks are selected in the graph
        hold = self.key.hold()
        hold.__enter__()
        self._open.append(hold)

    def _exit(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._open:
            self._open.pop().__exit__(None, None, None)


class TopKWeight(nn.Module):
    r"""Parametrization :math:`W \mapsto W \odot \operatorname{topk}(|W|)` with a
    straight-through gradient (``torch.nn.utils.parametrize``).

    Args:
        ratio (int or float): weights kept: an ``int`` count, a ``float`` fraction in (0, 1].
            Ignored (the budget is shared) when ``shared`` is given.
        numel (int): number of weights of the layer.

    Shapes:
        - **input:** the layer's weight, any shape
        - **output:** same shape, all but the top-k entries zeroed

    Examples:
        >>> p = TopKWeight(2, numel=4)
        >>> p(torch.tensor([[0.1, -3.0], [2.0, 0.5]])).tolist()
        [[0.0, -3.0], [2.0, 0.0]]
    """

    def __init__(self, ratio: int | float, numel: int, shared: _GlobalBudget | None = None):
        super().__init__()
        self.k = resolve_k(ratio, numel) if shared is None else None
        self.numel = numel
        self._shared = shared
        self._layer: list[nn.Module] = []  # a list keeps the layer out of the module tree
        #: the weight the cached mask was chosen for (by value, see ValueKey)
        self.key = ValueKey()
        self._mask: Tensor | None = None
        if shared is not None:
            shared.members.append(self)

    @property
    def counter(self) -> Counter:
        """How :func:`~dnwgraph.count_params` / :func:`~dnwgraph.count_macs` count the layer:
        only its kept weights (a :class:`~dnwgraph.models.counting.CountingParametrization`)."""
        return _SPARSE_LAYER_COUNTER

    def current_weight(self, given: Tensor | None = None) -> Tensor:
        """The unmasked weight of this layer (``given`` when passed)."""
        if given is not None:
            return given
        return self._layer[0].parametrizations.weight.original  # type: ignore[union-attr,return-value]

    def mask(self, weight: Tensor) -> Tensor:
        """Boolean mask of the kept weights, cached while ``weight`` keeps its values (a
        :class:`~dnwgraph.nn.kernels.ValueKey`: any change, in place or not, selects again).

        In compiled, exported or traced code: selected in the graph at every call
        (:func:`~dnwgraph.select.graph_topk_mask`, the same mask), no cache."""
        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            return self._graph_mask(weight)
        if self._shared is not None:
            return self._shared.mask_for(self, weight)
        if self._mask is None or not self.key.matches([weight]):
            assert self.k is not None
            self._mask = topk_mask(weight.detach().abs().reshape(-1), self.k).view_as(weight)
            self.key.store([weight])
        return self._mask

    def _graph_mask(self, weight: Tensor) -> Tensor:
        if self._shared is None:
            assert self.k is not None
            return graph_topk_mask(weight.detach().abs().reshape(-1), self.k).view_as(weight)
        members = self._shared.members
        weights = [m.current_weight(weight if m is self else None) for m in members]
        score = torch.cat([w.detach().abs().reshape(-1).to(weight.device) for w in weights])
        flat = graph_topk_mask(score, self._shared.k)
        return flat.split([w.numel() for w in weights])[members.index(self)].view_as(weight)

    def invalidate(self) -> None:
        """Forget the cached mask (the shared one too, with ``scope="model"``): the next use
        selects again."""
        self._mask = None
        self.key.invalidate()
        if self._shared is not None:
            self._shared.invalidate()

    def forward(self, weight: Tensor) -> Tensor:
        return _TopKStraightThrough.apply(weight, self.mask(weight).to(weight.dtype))

    def right_inverse(self, weight: Tensor) -> Tensor:
        return weight  # assigning layer.weight sets the trainable weight itself

    def extra_repr(self) -> str:
        return "scope='model'" if self._shared is not None else f"k={self.k}, numel={self.numel}"


class _SparseLayerCounter(Counter):
    """:func:`~dnwgraph.count_params` / :func:`~dnwgraph.count_macs` of a sparsified layer:
    only the kept weights count (one parameter each, and one MAC per output position for a
    convolution, per output row for a linear layer); the bias counts as for a dense layer."""

    def params(self, module: nn.Module) -> int:
        nnz = int((_weight(module) != 0).sum())
        bias = module.bias  # type: ignore[union-attr]
        return nnz + (bias.numel() if isinstance(bias, Tensor) else 0)

    def macs(
        self, module: nn.Module, inputs: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> int:
        weight: Tensor = module.weight  # type: ignore[assignment]
        positions = output.numel() // weight.size(0)  # outputs per output unit
        bias = module.bias is not None  # type: ignore[union-attr]
        return positions * int((weight != 0).sum()) + (output.numel() if bias else 0)


_SPARSE_LAYER_COUNTER = _SparseLayerCounter()


def _matches(name: str, module: nn.Module, patterns: Iterable[Pattern]) -> bool:
    for p in patterns:
        if isinstance(p, str) and fnmatch.fnmatchcase(name, p):
            return True
        if isinstance(p, type) and isinstance(module, p):
            return True
    return False


def _as_patterns(value: Pattern | Sequence[Pattern] | None, name: str) -> list[Pattern]:
    if value is None:
        return []
    items = [value] if isinstance(value, (str, type)) else list(value)
    for p in items:
        if not isinstance(p, (str, type)):
            raise DNWGraphTypeError(
                f"'{name}' must hold name patterns (str) or module types (got {p!r})"
            )
    return items


def sparsifiable_layers(
    module: nn.Module,
    include: Pattern | Sequence[Pattern] | None = None,
    exclude: Pattern | Sequence[Pattern] | None = None,
    dense_first: bool = False,
) -> list[tuple[str, nn.Module]]:
    """The ``(name, layer)`` pairs :func:`sparsify` would convert, in ``named_modules`` order.

    Args:
        module (nn.Module): the model.
        include: glob patterns on qualified names (``"features.*"``) or module types; default:
            every :data:`SPARSIFIABLE` layer.
        exclude: patterns or types to skip (applied after ``include``).
        dense_first (bool, optional): skip the first matching layer (the paper's "first
            layer dense"). (default: ``False``)

    Examples:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> [n for n, _ in sparsifiable_layers(net, dense_first=True)]
        ['2']
    """
    inc = _as_patterns(include, "include")
    exc = _as_patterns(exclude, "exclude")
    layers = []
    for name, layer in module.named_modules():
        if not isinstance(layer, SPARSIFIABLE) and not (inc and _matches(name, layer, inc)):
            continue
        if inc and not _matches(name, layer, inc):
            continue
        if exc and _matches(name, layer, exc):
            continue
        weight = getattr(layer, "weight", None)
        if not isinstance(weight, Tensor) or weight.dim() < 2:
            continue  # norms and biases stay dense
        if parametrize.is_parametrized(layer, "weight"):
            raise DNWGraphError(f"layer {name!r} is already sparsified; call unsparsify() first")
        layers.append((name, layer))
    return layers[1:] if dense_first else layers


def _check_module(module: Any) -> None:
    if not isinstance(module, nn.Module):
        from dnwgraph.errors import DNWGraphTypeError

        raise DNWGraphTypeError(
            f"'module' must be an nn.Module (got {type(module).__name__} {module!r:.40})"
        )


def sparsify(
    module: nn.Module,
    ratio: int | float,
    scope: str = "per_layer",
    include: Pattern | Sequence[Pattern] | None = None,
    exclude: Pattern | Sequence[Pattern] | None = None,
    dense_first: bool = False,
) -> nn.Module:
    r"""Turn the Linear / Conv1d / Conv2d layers of ``module`` into DNW-sparse layers, in place.

    Each converted layer computes with :math:`W \odot \operatorname{topk}(|W|, k)` and passes
    the gradient straight through to every weight (see the module docstring).

    Args:
        module (nn.Module): any model.
        ratio (int or float): weights kept: a ``float`` in (0, 1] is the density (``0.1`` keeps
            10%), an ``int`` a count (per layer with ``scope="per_layer"``, in total with
            ``"model"``).
        scope (str, optional): ``"per_layer"`` (a budget per layer) or ``"model"`` (one budget
            over all converted layers). (default: ``"per_layer"``)
        include: name glob patterns or module types to convert (default: all
            :data:`SPARSIFIABLE` layers).
        exclude: name patterns or types to keep dense.
        dense_first (bool, optional): keep the first converted layer dense. (default: ``False``)

    Returns:
        nn.Module: ``module`` itself.

    Raises:
        ValueError: unknown ``scope``, a bad ``ratio``, no layer to convert, or a layer that
            is already sparsified.
        TypeError: ``module`` is not an ``nn.Module``, or a pattern that is neither a ``str``
            nor a module type.

    Examples:
        >>> net = sparsify(nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 2)), 0.1)
        >>> int((net[0].weight != 0).sum()), int((net[2].weight != 0).sum())
        (10, 2)
    """
    _check_module(module)
    if scope not in SCOPES:
        raise DNWGraphError(f"'scope' must be one of {list(SCOPES)} (got {scope!r})")
    layers = sparsifiable_layers(module, include, exclude, dense_first)
    if not layers:
        raise DNWGraphError("no layer to sparsify: check 'include' / 'exclude'")
    shared = None
    if scope == "model":
        shared = _GlobalBudget(resolve_k(ratio, sum(_weight(layer).numel() for _, layer in layers)))
    else:
        for _, layer in layers:
            resolve_k(ratio, _weight(layer).numel())  # validate every budget before changing
    for _, layer in layers:
        p = TopKWeight(ratio, _weight(layer).numel(), shared)
        parametrize.register_parametrization(layer, "weight", p, unsafe=True)
        p._layer.append(layer)  # counted by its kept weights: see TopKWeight.counter
    if shared is not None:
        shared.attach(module)  # one comparison of all the weights per forward pass
    return module


def sparsified_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The ``(name, layer)`` pairs of ``module`` whose weight :func:`sparsify` parametrized.

    Examples:
        >>> net = sparsify(nn.Sequential(nn.Linear(4, 4)), 0.5)
        >>> [n for n, _ in sparsified_layers(net)]
        ['0']
    """
    return [
        (name, layer)
        for name, layer in module.named_modules()
        if parametrize.is_parametrized(layer, "weight")
        and any(isinstance(p, TopKWeight) for p in layer.parametrizations.weight)  # type: ignore[union-attr]
    ]


def unsparsify(module: nn.Module) -> nn.Module:
    r"""Bake the masks in: every sparsified layer gets a plain ``weight`` Parameter equal to
    :math:`W \odot M` (pruned entries exactly zero); the model's outputs are unchanged.

    Args:
        module (nn.Module): a model passed through :func:`sparsify`.

    Returns:
        nn.Module: ``module`` itself.

    Raises:
        ValueError: if no layer of ``module`` is sparsified.

    Examples:
        >>> net = unsparsify(sparsify(nn.Sequential(nn.Linear(4, 4)), 0.25))
        >>> type(net[0].weight).__name__, int((net[0].weight != 0).sum())
        ('Parameter', 4)
    """
    _check_module(module)
    layers = sparsified_layers(module)
    if not layers:
        raise DNWGraphError("no sparsified layer found: call sparsify() first")
    # every mask first: with scope="model" a layer's mask reads the other layers' weights
    with torch.no_grad():
        baked = [_weight(layer).detach().clone() for _, layer in layers]
    for (_, layer), weight in zip(layers, baked, strict=True):
        for p in layer.parametrizations.weight:  # type: ignore[union-attr]
            if isinstance(p, TopKWeight) and p._shared is not None:
                p._shared.detach()
        parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
        with torch.no_grad():  # the same Parameter (optimizers keep it), the masked values
            _weight(layer).copy_(weight)
    return module


def density(module: nn.Module) -> dict[str, float]:
    """Fraction of nonzero effective weights of every sparsified layer, by name.

    Examples:
        >>> density(sparsify(nn.Sequential(nn.Linear(10, 10)), 0.3))
        {'0': 0.3}
    """
    with torch.no_grad():
        return {
            name: float((_weight(layer) != 0).sum()) / _weight(layer).numel()
            for name, layer in sparsified_layers(module)
        }


def sparse_wiring(module: nn.Module, *, all_candidates: bool = False) -> Wiring:
    r"""The wiring of a (sparsified) ``nn.Linear`` or stack of them, neurons as nodes.

    The Linear layers of ``module`` (``module`` itself if it is one), in ``modules()`` order,
    must chain (``out_features`` of one equals ``in_features`` of the next, as in an MLP).
    Layer :math:`\ell` maps neuron block :math:`\ell` to block :math:`\ell + 1`; nodes are
    numbered block by block (the inputs first), and edge :math:`(j, i)` exists where the
    effective weight :math:`\tilde W_{ij} \ne 0` (every weight with ``all_candidates=True``).
    Pass the result to :func:`dnwgraph.to_networkx`.

    Args:
        module (nn.Module): an ``nn.Linear``, or a module whose Linear layers chain.
        all_candidates (bool, optional): every weight is an edge. (default: ``False``)

    Returns:
        Wiring: :math:`\text{in}_0 + \sum_\ell \text{out}_\ell` nodes; input nodes are the
        first block, output nodes the last.

    Raises:
        ValueError: if ``module`` has no Linear layer, the layers do not chain, or no weight is
            nonzero.

    Examples:
        >>> mlp = sparsify(nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2)), 2)
        >>> w = sparse_wiring(mlp)
        >>> w.num_nodes, w.num_edges, w.output_nodes.tolist()
        (7, 4, [5, 6])
    """
    layers = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise DNWGraphError(f"'module' has no nn.Linear layer (got {type(module).__name__})")
    for a, b in zip(layers[:-1], layers[1:], strict=True):
        if a.out_features != b.in_features:
            raise DNWGraphError(
                "the Linear layers must chain: out_features "
                f"{a.out_features} is followed by in_features {b.in_features}"
            )
    sources, targets, offset = [], [], 0
    with torch.no_grad():
        for layer in layers:
            weight = layer.weight.detach().cpu()
            keep = torch.ones_like(weight, dtype=torch.bool) if all_candidates else weight != 0
            dst, src = torch.nonzero(keep, as_tuple=True)
            sources.append(src + offset)
            targets.append(dst + offset + layer.in_features)
            offset += layer.in_features
    edge_index = torch.stack([torch.cat(sources), torch.cat(targets)])
    if edge_index.size(1) == 0:
        raise DNWGraphError("no weight is nonzero, so the wiring has no edge")
    n_out = layers[-1].out_features
    num_nodes = offset + n_out
    return Wiring(
        edge_index,
        num_nodes,
        input_nodes=torch.arange(layers[0].in_features),
        output_nodes=torch.arange(num_nodes - n_out, num_nodes),
    )
