r"""Train any model as a sparse network: :func:`sparsify` and :func:`unsparsify`.

The weight tensor of a Linear / Conv1d / Conv2d layer is a complete bipartite wiring between
its input and output units: one candidate edge per weight (for a convolution, one per kernel
tap), :math:`E = |W|` edges from an input unit to an output unit.  *Discovering Neural
Wirings* (Section 4.3, sparse ResNet-50) trains it like any other wiring: the forward pass
uses the weights a :class:`~dnwgraph.Selection` keeps,

.. math::
    \tilde W = W \odot M, \qquad M = \operatorname{selection}(\operatorname{vec} W)
    \quad (\texttt{dnw}: M = \operatorname{topk}(|W|, k)),

and the backward pass follows the selection: with ``dnw`` it is straight-through,
:math:`\partial L/\partial W = \partial L/\partial \tilde W` for **every** weight, pruned or
not, so a pruned weight can grow back.  Every registered selection is accepted (``rigl``,
``set``, ``gmp``, ``snip``, ``edge_popup``, ``random``, ``complete``, ...) with its options,
through the same :class:`~dnwgraph.Selection` protocol as :class:`~dnwgraph.WiringConv`'s: the
layer is the selection's host (:class:`~dnwgraph.select.SelectionHost`), its flat weight the
``edge_weight``.  The budget is per layer (``scope="per_layer"``, :math:`k_\ell = \max(1,
\operatorname{round}(r\,|W_\ell|))`), per output unit of each layer (``scope="per_node"``,
the selections' per-node budget: :math:`\max(1, \operatorname{round}(r\,d))` of a unit's
:math:`d` weights) or shared by all sparsified layers of the model
(``scope="model"``, :math:`k = \max(1, \operatorname{round}(r \sum_\ell |W_\ell|))`, one
selection over the concatenated weights; for the selections that only read the weights,
:attr:`~dnwgraph.Selection.reads_weights_only`).  Biases and normalisation layers stay dense.

It is implemented with :mod:`torch.nn.utils.parametrize`: ``layer.weight`` becomes the masked
weight and the trainable tensor, flattened to ``[E]`` as a ``WiringConv``'s ``edge_weight``,
lives at ``layer.parametrizations.weight.original`` (the same ``Parameter`` object, so
optimizers built before or after :func:`sparsify` see it; but ``edge_popup`` trains new
parameters, its scores, which only an optimizer built after sees); the selection's own state (a
step, a mask, edge-popup's scores) is a submodule, ``layer.parametrizations.weight[0].selection``,
saved in the ``state_dict`` (a model saved sparsified loads into a freshly sparsified one and
continues exactly; PyTorch pickles parametrized modules only through their ``state_dict``).
:func:`unsparsify` bakes the masks in and restores plain layers of the original shapes.
:func:`~dnwgraph.count_params` and :func:`~dnwgraph.count_macs` count only the kept weights of
a sparsified layer.

A layer's mask is kept while its weight and the selection's :meth:`~dnwgraph.Selection.cache_key`
keep their values (:class:`~dnwgraph.nn.kernels.ValueKey`, the key of ``WiringConv``'s plan
cache), compared at every use, so an optimizer step, any in-place edit or ``load_state_dict``
selects again (the sparsified weights are held twice in memory, and the selection keeps the
target unit of every weight, an int64 buffer ``[E]``).  With ``scope="model"`` every
mask depends on every weight; hooks on the sparsified module make one forward pass compare
them once.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parameter import is_lazy
from torch.nn.utils import parametrize
from torch.utils.hooks import RemovableHandle

from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.graph import Wiring
from dnwgraph.models.counting import TRANSPOSED_CONVS, Counter
from dnwgraph.nn.kernels import ValueKey, effective_weight
from dnwgraph.select import Selection, create_selection, node_budget, resolve_k
from dnwgraph.select.strategies import SELECTIONS

#: Layer types :func:`sparsify` converts by default.
SPARSIFIABLE: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)
#: One budget for each layer, for each output unit of each layer, or one for the whole model
#: ("per X": one budget for each X; ``per_node`` is the selections' own ``scope="per_node"``,
#: a unit being a node; their ``"global"``, one budget for the layer, is ``per_layer`` here).
SCOPES: tuple[str, ...] = ("per_layer", "per_node", "model")

Pattern = str | type[nn.Module]


def _weight(layer: nn.Module) -> Tensor:
    weight = layer.weight
    assert isinstance(weight, Tensor)
    return weight


def unit_edges(layer: nn.Module, shape: Sequence[int] | None = None) -> tuple[Tensor, int]:
    r"""The wiring of a layer's weight: ``edge_index [2, E]`` with one edge per weight, in the
    order of ``weight.reshape(-1)``, and the number of nodes (the input units, then the output
    units).

    A weight of shape :math:`[C_{out}, C_{in}/g, *K]` (``g = layer.groups``, 1 for a Linear)
    has the edge :math:`(c, C_{in} + o)` for entry :math:`[o, c \bmod (C_{in}/g), *]`, with
    :math:`c` the input channel of the group of :math:`o`; a convolution has one edge per
    kernel tap (parallel edges).  A transposed convolution's weight is the other way round,
    :math:`[C_{in}, C_{out}/g, *K]`: entry :math:`[c, o \bmod (C_{out}/g), *]` is the edge
    :math:`(c, C_{in} + o)`, :math:`o` an output channel of the group of :math:`c`.

    Args:
        layer (nn.Module): a layer with a ``weight`` of at least 2 dimensions (and
            ``groups``, for a grouped convolution).
        shape (sequence of int, optional): the weight's shape (default: ``layer.weight``'s).

    Returns:
        tuple: ``edge_index`` (LongTensor ``[2, E]``) and the number of nodes
        :math:`C_{in} + C_{out}`.

    Examples:
        >>> edge_index, n = unit_edges(nn.Linear(2, 3))
        >>> edge_index.tolist(), n
        ([[0, 1, 0, 1, 0, 1], [2, 2, 3, 3, 4, 4]], 5)
        >>> unit_edges(nn.ConvTranspose1d(2, 1, 1))[0].tolist()  # weight [2, 1, 1]
        [[0, 1], [2, 2]]
    """
    size = tuple(_weight(layer).shape if shape is None else shape)
    rows, per_row, taps = size[0], size[1], 1
    for s in size[2:]:
        taps *= s
    groups = int(getattr(layer, "groups", 1))
    ids = torch.arange(rows * per_row * taps)
    row = ids // (per_row * taps)
    # the unit of dim 1: its index within the group, offset by the group of the row
    col = (ids // taps) % per_row + (row // max(rows // groups, 1)) * per_row
    if isinstance(layer, TRANSPOSED_CONVS):  # rows are the inputs, dim 1 the outputs
        return torch.stack([row, rows + col]), rows + per_row * groups
    n_in = per_row * groups
    return torch.stack([col, n_in + row]), n_in + rows


class MaskedWeight(nn.Module):
    r"""Parametrization :math:`W \mapsto W \odot M` (``torch.nn.utils.parametrize``), the mask
    :math:`M` chosen by a :class:`~dnwgraph.Selection` over the flattened weight, the gradient
    by its rule (:func:`~dnwgraph.nn.kernels.effective_weight`: every weight when
    :meth:`~dnwgraph.Selection.all_gradients`, else the kept ones).

    It is the selection's host (a :class:`~dnwgraph.select.SelectionHost`): ``edge_weight``
    is the layer's trainable flat weight, ``edge_index`` and ``num_nodes`` its
    :func:`unit_edges`.

    Args:
        selection (Selection): the strategy over the :math:`E` weights of this layer (over
            every layer's with ``shared``).
        layer (nn.Module): the layer whose ``weight`` this parametrizes.
        shared (optional): the model-wide budget of ``scope="model"``.

    Shapes:
        - **input:** the trainable weight :math:`[E]`
        - **output:** the layer's weight shape, all but the kept entries zeroed

    Examples:
        >>> layer = nn.Linear(2, 2, bias=False)
        >>> sel = create_selection("dnw", 2, target=unit_edges(layer)[0][1], num_nodes=4)
        >>> p = MaskedWeight(sel, layer)
        >>> p(torch.tensor([0.1, -3.0, 2.0, 0.5])).tolist()
        [[0.0, -3.0], [2.0, 0.0]]
    """

    #: every weight state may give every weight its gradient (read by the selection)
    grad_every = 1

    def __init__(
        self, selection: Selection, layer: nn.Module, shared: _SharedSelection | None = None
    ) -> None:
        super().__init__()
        self.selection = selection
        self.shape = tuple(_weight(layer).shape)
        self.numel = _weight(layer).numel()
        #: the layer's parameter names in their order (restored by :func:`unsparsify`)
        self.order = tuple(name for name, _ in layer.named_parameters(recurse=False))
        #: whether the weight trained before (edge-popup stops it; unsparsify restores it)
        self.requires_grad = _weight(layer).requires_grad
        self._layer = [layer]  # a list keeps the layer out of the module tree
        self._shared = shared
        #: the weight and selection state the cached mask was chosen for (by value)
        self.key = ValueKey()
        self._mask: Tensor | None = None
        #: masks chosen so far (the ``step`` of :meth:`~dnwgraph.Selection.all_gradients`)
        self.states = 0
        if shared is not None:
            shared.members.append(self)

    # ------------------------------------------------------------ SelectionHost
    @property
    def edge_weight(self) -> Tensor:
        """The layer's trainable weight, flat ``[E]``."""
        return self._layer[0].parametrizations.weight.original  # type: ignore[union-attr,return-value]

    @property
    def edge_index(self) -> Tensor:
        """``[2, E]``: input unit to output unit of each weight (:func:`unit_edges`)."""
        return unit_edges(self._layer[0], self.shape)[0]

    @property
    def num_nodes(self) -> int:
        """Input units and output units of the layer."""
        return self.shape[0] + self.shape[1] * int(getattr(self._layer[0], "groups", 1))

    # ------------------------------------------------------------ the mask
    @property
    def counter(self) -> Counter:
        """How :func:`~dnwgraph.count_params` / :func:`~dnwgraph.count_macs` count the layer:
        only its kept weights (a :class:`~dnwgraph.models.counting.CountingParametrization`)."""
        return _SPARSE_LAYER_COUNTER

    def current_weight(self, given: Tensor | None = None) -> Tensor:
        """The trainable (unmasked, flat) weight of this layer (``given`` when passed)."""
        return self.edge_weight if given is None else given

    def mask(self, weight: Tensor) -> Tensor:
        """Boolean mask ``[E]`` of the kept weights, cached while ``weight`` and the
        selection's :meth:`~dnwgraph.Selection.cache_key` keep their values.

        In compiled, exported or traced code the selection runs in the graph at every call,
        no cache (``dnw``'s top-k: :func:`~dnwgraph.select.graph_topk_mask`, the same mask)."""
        if self._shared is not None:
            return self._shared.mask_for(self, weight)
        if _in_graph():
            return self.selection(weight)
        sel = self.selection
        key = sel.cache_key()
        if self._mask is None or key is None or not self.key.matches([weight, *key]):
            self._mask = sel(weight)  # a strategy may change the weights here, in place
            key = sel.cache_key()
            if key is None:  # chosen for this call only (td in training): no later use
                self.key.invalidate()
            else:
                self.key.store([weight, *key])
            self.states += 1
        return self._mask

    def invalidate(self) -> None:
        """Forget the cached mask (the shared one too, with ``scope="model"``): the next use
        selects again."""
        self._mask = None
        self.key.invalidate()
        if self._shared is not None:
            self._shared.invalidate()

    def forward(self, weight: Tensor) -> Tensor:
        mask = self.mask(weight)
        states = self.states if self._shared is None else self._shared.states
        sel = self.selection
        return effective_weight(sel.weight(weight), mask, sel.all_gradients(states)).view(
            self.shape
        )

    def right_inverse(self, weight: Tensor) -> Tensor:
        return weight.reshape(-1)  # assigning layer.weight sets the trainable weight itself

    def extra_repr(self) -> str:
        scope = "model" if self._shared is not None else "per_layer"
        scope = "per_node" if self.selection.scope == "per_node" else scope
        return f"selection={self.selection.name!r}, scope={scope!r}, numel={self.numel}"


def _in_graph() -> bool:
    """In compiled, exported or traced code: no cache, the selection runs in the graph."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


class _SharedSelection:
    """``scope="model"``: one selection over the concatenated weights of every member layer,
    chosen again when any of them changes (a :class:`~dnwgraph.nn.kernels.ValueKey` on all of
    them); the host of that selection.

    During a forward pass of the sparsified module (whose hooks open :meth:`ValueKey.hold
    <dnwgraph.nn.kernels.ValueKey.hold>`) the first use compares the weights and the others
    trust it."""

    grad_every = 1

    def __init__(self, selection: Selection) -> None:
        self.selection = selection
        self.members: list[MaskedWeight] = []
        self.key = ValueKey()
        self.states = 0
        self._masks: list[Tensor] = []
        self._open: list[contextlib.AbstractContextManager[None]] = []
        self._hooks: list[RemovableHandle] = []

    @property
    def edge_weight(self) -> Tensor:
        """Every member's weight, concatenated (a copy: the selection only reads it)."""
        return torch.cat([m.current_weight().detach().reshape(-1) for m in self.members])

    @property
    def edge_index(self) -> Tensor:
        parts, offset = [], 0
        for m in self.members:
            parts.append(m.edge_index + offset)
            offset += m.num_nodes
        return torch.cat(parts, dim=1)

    @property
    def num_nodes(self) -> int:
        return sum(m.num_nodes for m in self.members)

    def mask_for(self, member: MaskedWeight, weight: Tensor) -> Tensor:
        weights = [m.current_weight(weight if m is member else None) for m in self.members]
        if _in_graph():  # selected in the graph at every call, no cache
            return self._select(weights)[self.members.index(member)]
        key = self.selection.cache_key()
        if not self._masks or key is None or not self.key.matches([*weights, *key]):
            self._masks = self._select(weights)
            key = self.selection.cache_key()
            if key is None:  # chosen for this call only (td in training): no later use
                self.key.invalidate()
            else:
                self.key.store([*weights, *key])
            self.states += 1
        return self._masks[self.members.index(member)]

    def _select(self, weights: list[Tensor]) -> list[Tensor]:
        """The selection over the concatenated ``weights``, split back into one mask each."""
        flat = self.selection(
            torch.cat([w.detach().reshape(-1).to(weights[0].device) for w in weights])
        )
        sizes = [w.numel() for w in weights]
        return [m.to(w.device) for m, w in zip(flat.split(sizes), weights, strict=True)]

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
        if _in_graph():
            return  # no cache to hold: the masks are selected in the graph
        hold = self.key.hold()
        hold.__enter__()
        self._open.append(hold)

    def _exit(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._open:
            self._open.pop().__exit__(None, None, None)


class _SparseLayerCounter(Counter):
    """:func:`~dnwgraph.count_params` / :func:`~dnwgraph.count_macs` of a sparsified layer:
    only the kept weights count (one parameter each, and one MAC per output position for a
    convolution, per input position for a transposed one, per output row for a linear layer);
    the bias counts as for a dense layer."""

    def params(self, module: nn.Module) -> int:
        nnz = int((_weight(module) != 0).sum())
        bias = module.bias  # type: ignore[union-attr]
        return nnz + (bias.numel() if isinstance(bias, Tensor) else 0)

    def macs(
        self, module: nn.Module, inputs: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> int:
        weight: Tensor = module.weight  # type: ignore[assignment]
        if isinstance(module, TRANSPOSED_CONVS):  # each weight scatters its input channel
            positions = inputs[0].numel() // weight.size(0)
        else:
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
    items = list(value) if isinstance(value, (list, tuple, set)) else [value]
    for p in items:
        if not isinstance(p, (str, type)):
            raise DNWGraphTypeError(
                f"'{name}' must hold name patterns (str) or module types (got {type(p).__name__} "
                f"{p!r})"
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
    if not isinstance(dense_first, bool):
        raise DNWGraphError(f"'dense_first' must be True or False (got {dense_first!r})")
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
        if isinstance(weight, Tensor) and is_lazy(weight):
            raise DNWGraphError(
                f"layer {name!r} is lazy, its weight not yet created; expected a model with "
                "every weight shaped (run one forward pass before sparsify)"
            )
        if not isinstance(weight, Tensor) or weight.dim() < 2:
            continue  # norms and biases stay dense
        if parametrize.is_parametrized(layer, "weight"):
            if _masked(layer):
                raise DNWGraphError(
                    f"layer {name!r} is already sparsified; call unsparsify() first"
                )
            raise DNWGraphError(
                f"layer {name!r} has a parametrization of its weight (weight_norm, ...); "
                f"expected a plain weight (exclude={name!r} keeps the layer as it is)"
            )
        layers.append((name, layer))
    layers = layers[1:] if dense_first else layers
    _check_not_tied(module, layers)
    return layers


def _check_not_tied(module: nn.Module, layers: list[tuple[str, nn.Module]]) -> None:
    """Tied weights would get one selection per layer, each changing the shared tensor; a
    weight tied to a module left as it is would be read there unmasked."""
    owner: dict[int, str] = {}
    for name, layer in layers:
        first = owner.setdefault(id(_weight(layer)), name)
        if first != name:
            raise DNWGraphError(
                f"layers {first!r} and {name!r} share one weight tensor (tied weights); expected "
                "each sparsified layer to own its weight (untie them, or exclude both)"
            )
    converted = {f"{name}.weight" if name else "weight" for name, _ in layers}
    for held, param in module.named_parameters(remove_duplicate=False):
        name = owner.get(id(param))
        if name is not None and held not in converted:
            raise DNWGraphError(
                f"layer {name!r}: its weight is also {held!r}, which is not sparsified and "
                "would read the unmasked weight (tied weights); untie them, or keep the layer "
                f"dense with exclude={name!r}"
            )


def _check_module(module: Any) -> None:
    if not isinstance(module, nn.Module):
        from dnwgraph.errors import DNWGraphTypeError

        raise DNWGraphTypeError(
            f"'module' must be an nn.Module (got {type(module).__name__} {module!r:.40})"
        )


def _layer_selection(
    name: str, ratio: int | float, layer: nn.Module, scope: str, options: Any
) -> Selection:
    """The selection ``name`` over the weights of ``layer`` (its :func:`unit_edges`), with a
    budget for each output unit when ``scope="per_node"``."""
    edge_index, num_nodes = unit_edges(layer)
    target = edge_index[1].clone()
    node_scope = "per_node" if scope == "per_node" else None
    return create_selection(
        name, ratio, target=target, num_nodes=num_nodes, scope=node_scope, **options
    )


def _check_layer_budget(ratio: Any, name: str, layer: nn.Module, scope: str) -> None:
    """An int budget may fit one layer and not another: the error names the layer."""
    try:
        if scope == "per_node":  # an int is a count for each output unit, up to its fan-in
            edge_index, num_nodes = unit_edges(layer)
            node_budget(ratio, torch.bincount(edge_index[1], minlength=num_nodes))
        else:
            resolve_k(ratio, _weight(layer).numel())
    except DNWGraphTypeError:
        raise  # the same for every layer
    except DNWGraphError as err:
        raise DNWGraphError(f"layer {name!r}: {err}") from None


def _shared_selection(
    name: str, ratio: int | float, layers: list[nn.Module], options: Any
) -> _SharedSelection:
    """One selection ``name`` over the weights of every layer of ``layers``."""
    targets, offset = [], 0
    for layer in layers:
        edge_index, num_nodes = unit_edges(layer)
        targets.append(edge_index[1] + offset)
        offset += num_nodes
    sel = create_selection(name, ratio, target=torch.cat(targets), num_nodes=offset, **options)
    if not sel.reads_weights_only:
        raise DNWGraphError(
            f"scope='model' takes a selection that only reads the weights (got {name!r}, which "
            "changes them or takes their gradient); use scope='per_layer'"
        )
    return _SharedSelection(sel)


def _restore(layer: nn.Module, weight: Tensor | None = None) -> None:
    """Remove the parametrization of ``layer``: its ``weight`` is the trainable ``Parameter``
    again, with the layer's shape and the values of ``weight`` (default: its own)."""
    part = layer.parametrizations.weight[0]  # type: ignore[union-attr,index]
    part.selection.detach()  # its gradient hook would act on the plain weight
    if part._shared is not None:
        part._shared.detach()
    shape, order = part.shape, part.order
    # a deep copy shares the parametrized class (torch's ``__deepcopy__`` keeps it), and the
    # removal deletes the ``weight`` property from the class: give this layer its own first
    cls = type(layer)
    layer.__class__ = type(cls.__name__, cls.__bases__, dict(vars(cls)))
    parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
    params = layer._parameters  # ``weight`` came back last: the original order again
    ordered = {n: params[n] for n in order if n in params} | params
    params.clear()
    params.update(ordered)
    param = _weight(layer)
    with torch.no_grad():  # the same Parameter (optimizers keep it), the layer's shape
        param.set_((param.detach() if weight is None else weight).clone().view(shape))
    param.requires_grad_(part.requires_grad)


def sparsify(
    module: nn.Module,
    ratio: int | float,
    selection: str = "dnw",
    *,
    scope: str = "per_layer",
    include: Pattern | Sequence[Pattern] | None = None,
    exclude: Pattern | Sequence[Pattern] | None = None,
    dense_first: bool = False,
    **selection_options: Any,
) -> nn.Module:
    r"""Turn the Linear / Conv1d / Conv2d layers of ``module`` into sparse layers, in place.

    Each converted layer computes with :math:`W \odot M`, the mask :math:`M` chosen by the
    selection over its weights (``dnw``: :math:`\operatorname{topk}(|W|, k)` with the
    gradient straight through to every weight; see the module docstring).

    Args:
        module (nn.Module): any model.
        ratio (int or float): weights kept: a ``float`` in (0, 1] is the density (``0.1`` keeps
            10%), an ``int`` a count (per layer with ``scope="per_layer"``, per output unit
            with ``"per_node"``, in total with ``"model"``).
        selection (str, optional): a name from :func:`~dnwgraph.list_selections` (``"rigl"``,
            ``"gmp"``, ``"edge_popup"``, ...); each layer gets its own. (default: ``"dnw"``)
        scope (str, optional): who shares one budget: ``"per_layer"`` (each layer; a
            selection's ``"global"``), ``"per_node"`` (each output unit of each layer: the
            selection's ``scope="per_node"``) or ``"model"`` (all converted layers, for a
            selection that only reads the weights). The selection's own ``scope`` option is
            this one. (default: ``"per_layer"``)
        include: name glob patterns or module types to convert (default: all
            :data:`SPARSIFIABLE` layers).
        exclude: name patterns or types to keep dense.
        dense_first (bool, optional): keep the first converted layer dense. (default: ``False``)
        **selection_options: the selection's options (``frequency``, ``end_step``, ``seed``,
            ...: :func:`~dnwgraph.select.selection_options`), the same for every layer.

    Returns:
        nn.Module: ``module`` itself.

    Raises:
        ValueError: unknown ``scope`` or ``selection``, a bad ``ratio`` or option, no layer to
            convert, a layer that is already sparsified, a weight tied to another layer or to a
            module that is not converted (an embedding), or ``scope="model"`` with a selection
            that changes the weights.
        TypeError: ``module`` is not an ``nn.Module``, ``selection`` is not a name, an unknown
            option, or a pattern that is neither a ``str`` nor a module type.

    Examples:
        >>> net = sparsify(nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 2)), 0.1)
        >>> int((net[0].weight != 0).sum()), int((net[2].weight != 0).sum())
        (10, 2)
        >>> net = sparsify(nn.Sequential(nn.Linear(10, 10)), 0.1, "rigl", frequency=50)
        >>> net[0].parametrizations.weight[0].selection.frequency
        50
    """
    _check_module(module)
    if scope not in SCOPES:
        hint = "; a selection's 'global' budget over one layer is scope='per_layer'"
        hint = hint if scope == "global" else ""
        raise DNWGraphError(f"'scope' must be one of {list(SCOPES)} (got {scope!r}){hint}")
    if not isinstance(selection, str):
        raise DNWGraphTypeError(
            f"'selection' must be a name from list_selections() (got {type(selection).__name__})"
        )
    SELECTIONS.get(selection)  # an unknown name, before the layers' budgets
    named = sparsifiable_layers(module, include, exclude, dense_first)
    layers = [layer for _, layer in named]
    if not layers:
        raise DNWGraphError(
            "no layer to sparsify: expected an nn.Linear / Conv1d / Conv2d or a layer matching "
            f"'include' (got {type(module).__name__} with include={include!r}, "
            f"exclude={exclude!r}, dense_first={dense_first})"
        )
    # every selection is built (its budget and options checked) before any layer changes
    if scope == "model":
        shared = _shared_selection(selection, ratio, layers, selection_options)
        parts = [MaskedWeight(shared.selection, layer, shared) for layer in layers]
    else:
        shared = None
        for name, layer in named:
            _check_layer_budget(ratio, name, layer, scope)
        parts = [
            MaskedWeight(_layer_selection(selection, ratio, layer, scope, selection_options), layer)
            for layer in layers
        ]
    done: list[nn.Module] = []
    try:
        for layer, part in zip(layers, parts, strict=True):
            parametrize.register_parametrization(layer, "weight", part, unsafe=True)
            done.append(layer)
            if shared is None:
                part.selection.attach(part)  # a strategy may hook or set the weights
        if shared is not None:
            shared.selection.attach(shared)
            shared.attach(module)  # one comparison of all the weights per forward pass
    except BaseException:  # the model as it was, whatever stopped the conversion
        for layer in done:
            _restore(layer)
        raise
    return module


def sparsified_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The ``(name, layer)`` pairs of ``module`` whose weight :func:`sparsify` parametrized.

    Examples:
        >>> net = sparsify(nn.Sequential(nn.Linear(4, 4)), 0.5)
        >>> [n for n, _ in sparsified_layers(net)]
        ['0']
    """
    return [(name, layer) for name, layer in module.named_modules() if _masked(layer)]


def _masked(layer: nn.Module) -> bool:
    """Whether :func:`sparsify` parametrized the weight of ``layer``."""
    return parametrize.is_parametrized(layer, "weight") and any(
        isinstance(p, MaskedWeight)
        for p in layer.parametrizations.weight  # type: ignore[union-attr]
    )


def unsparsify(module: nn.Module) -> nn.Module:
    r"""Bake the masks in: every sparsified layer gets a plain ``weight`` Parameter of its
    original shape equal to :math:`W \odot M` (pruned entries exactly zero); the model's
    outputs are unchanged.  The selections' state (edge-popup's scores) goes with them, and
    each weight requires grad as it did before :func:`sparsify` (edge-popup had stopped it).

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
    layers = [layer for _, layer in sparsified_layers(module)]
    if not layers:
        raise DNWGraphError("no sparsified layer found: call sparsify() first")
    # every mask first: with scope="model" a layer's mask reads the other layers' weights
    with torch.no_grad():
        baked = [_weight(layer).detach().clone() for layer in layers]
    for layer, weight in zip(layers, baked, strict=True):
        _restore(layer, weight)
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
