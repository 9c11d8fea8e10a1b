r"""The explicit cache of a :class:`~dnwgraph.WiringConv`: its selection and aggregation plans
for one state of its weights.

Re-selecting the top-k and building sparse matrices costs more than a small sparse product,
so a layer keeps them while its weights are unchanged (inference, the :math:`T` steps of a
recurrent model, the levels of a static one).  The key is public state only: a copy of the
edge weights the plans were built for and the selection's own state
(:meth:`~dnwgraph.Selection.cache_key`), compared **by value** at every use.  Whatever
changes the weights is seen (an optimizer step, an in-place edit, ``load_state_dict``,
``.to(...)``) without hooks into the optimizer or private tensor attributes; the comparison
reads :math:`E` numbers (a few microseconds on a CPU, one synchronisation on a GPU).

:meth:`PlanCache.hold` compares once for a block of calls (a model's forward pass calls a
layer once per level), :meth:`PlanCache.freeze` not at all (the plans are used as they are,
whatever the weights become), and :meth:`PlanCache.invalidate` drops everything.

Examples:
    >>> import torch
    >>> from dnwgraph import WiringConv, block_dag
    >>> conv = WiringConv(block_dag([2, 3, 2]), ratio=6)
    >>> x = torch.randn(7, 4)
    >>> with conv.plan_cache.hold():  # one state of the weights: compared once
    ...     same = torch.equal(conv(x), conv(x))
    >>> same
    True
    >>> conv.plan_cache.invalidate()  # the next call selects again

The same key for any cache of values derived from tensors (:class:`ValueKey`: the weights of
``sparsify``'s masks, for one):

    >>> w = torch.ones(3)
    >>> key = ValueKey()
    >>> key.store([w]); key.matches([w])
    True
    >>> with torch.no_grad():
    ...     _ = w.mul_(2)  # in place: the same tensor, other values
    >>> key.matches([w])
    False
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dnwgraph.errors import DNWGraphError

#: Plans kept for backward passes of compiled graphs (see :meth:`PlanCache.record`).
TAPE_SIZE = 64


def _snapshot(value: Any) -> Any:
    return value.detach().clone() if isinstance(value, Tensor) else value


def _same_kind(a: Tensor, b: Tensor) -> bool:
    return a.dtype == b.dtype and a.device == b.device and a.shape == b.shape


def _same_values(a: Tensor, b: Tensor) -> bool:
    """``torch.equal`` for tensors of the same kind; on a CPU through NumPy, which compares
    2-3x faster (the comparison runs at every call)."""
    if a.device.type == "cpu" and a.dtype != torch.bfloat16:
        return bool(np.array_equal(a.detach().numpy(), b.detach().numpy()))
    return torch.equal(a, b)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        both = isinstance(a, Tensor) and isinstance(b, Tensor)
        return both and _same_kind(a, b) and _same_values(a, b)
    return bool(a == b)


class _Holds:
    """The :meth:`hold` blocks of a value-keyed cache (``_holds`` open blocks; ``_held``: the
    key matched inside them)."""

    _holds: int
    _held: bool

    def hold(self) -> contextlib.AbstractContextManager[None]:
        """A block in which the keyed values do not change (e.g. one forward pass of a model
        that calls a layer once per level or per step): the first use compares them, later
        uses in the block trust that comparison.  Re-entrant; a no-op in compiled or traced
        code (the compiled operator compares at each call)."""
        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            return contextlib.nullcontext()
        return self._hold()

    @contextlib.contextmanager
    def _hold(self) -> Iterator[None]:
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            if not self._holds:
                self._held = False


class ValueKey(_Holds):
    """A cache key made of some values: a detached copy of each tensor (its values, dtype,
    device and shape are the key) and the others as they are, compared at every use, with
    :class:`PlanCache`'s comparison.  Whatever changes the tensors is seen (an optimizer step,
    an in-place edit, even through ``.data``, ``load_state_dict``, ``.to(...)``) without
    hooks into the optimizer or private tensor attributes; comparing reads every element once
    (one synchronisation per tensor on a GPU).

    :meth:`hold` compares once for a block of uses in which the values do not change.

    Attributes:
        values (tuple or None): the values of the last :meth:`store` (tensors copied);
            ``None``: nothing matches.
    """

    def __init__(self) -> None:
        self.values: tuple[Any, ...] | None = None
        self._holds = 0  # open hold() blocks
        self._held = False  # matched inside the open hold() blocks

    def matches(self, values: Sequence[Any]) -> bool:
        """Whether ``values`` equal those of the last :meth:`store` (inside :meth:`hold`,
        after one comparison that matched, without comparing again)."""
        if self._held:
            return self.values is not None
        same = (
            self.values is not None
            and len(values) == len(self.values)
            and all(_equal(a, b) for a, b in zip(self.values, values, strict=True))
        )
        self._held = same and self._holds > 0
        return same

    def store(self, values: Sequence[Any]) -> None:
        """Make ``values`` (copied) the key."""
        self.values = tuple(_snapshot(v) for v in values)
        self._held = self._holds > 0

    def invalidate(self) -> None:
        """Forget the key: nothing matches until the next :meth:`store`."""
        self.values, self._held = None, False

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_holds": 0, "_held": False}

    def __repr__(self) -> str:
        return f"ValueKey({'empty' if self.values is None else f'{len(self.values)} values'})"


class PlanCache(_Holds):
    """The selection and the aggregation plans of one :class:`~dnwgraph.WiringConv`, for the
    weight state they were built for.

    Attributes:
        weights (Tensor or None): the edge weights of the last selection (a detached copy;
            its values, dtype and device are the key).
        selection_state (tuple or None): the selection's :meth:`~dnwgraph.Selection.cache_key`
            when the mask was chosen (copied; ``None``: the mask is chosen at every call).
        mask (BoolTensor or None): the selected edges ``[E]``.
        plans (dict): :class:`~dnwgraph.nn.kernels.AggregationPlan` per
            ``(group, first_row, last_row)``, and a pull chain's plan under ``"pull"``
            (``dnwgraph.nn.kernels.pull_plan``), built on first use.
        by_group (tuple or None): the selected edges ordered by source group (built on first
            use by a layer with ``source_groups``).
        weight_states (int): distinct weight values seen (drives ``grad_every``): a change of
            dtype or device alone is not a new state.
        frozen (bool): plans are used without comparing the weights (:meth:`freeze`).

    In a :meth:`hold` block a selection that chooses at every call (``cache_key() is None``)
    still chooses at every call.

    A deep copy (``copy.deepcopy``, pickling) keeps the key and the mask and drops what is
    derived from them: the plans hold sparse tensors, which cannot be deep-copied (rebuilt on
    the next call).
    """

    def __init__(self) -> None:
        self.weights: Tensor | None = None
        self.weight_states = 0
        self._structure: dict[Any, Any] = {}
        self._structure_device: tuple[torch.device, bool] | None = None
        self._serial = 0
        self._holds = 0  # open hold() blocks
        self._held = False  # the entry was checked inside the open hold() blocks
        self._new_values = False  # matches() found other weight values (store() trusts it)
        self.invalidate()

    def invalidate(self) -> None:
        """Forget the selection and the plans (and unfreeze): the next call selects again.
        ``weights`` stays, so unchanged weights are not counted as a new state."""
        self.selection_state: tuple[Any, ...] | None = None
        self.mask: Tensor | None = None
        self.plans: dict[Any, Any] = {}  # keyed by the call's Rows (or "pull")
        self.by_group: Any = None
        self.frozen = False
        self._held = False
        self._tape: OrderedDict[int, Any] = OrderedDict()

    def freeze(self) -> None:
        """Use the current selection and plans as they are, without comparing the weights
        any more (until :meth:`invalidate`): no per-call comparison, so no GPU
        synchronisation in inference.  Later edits of the weights are ignored (the plans hold
        the selected weights of now), as with ``GCNConv(cached=True)``.

        Raises:
            DNWGraphError: nothing is selected yet (run the layer once first).
        """
        if self.mask is None:
            raise DNWGraphError(
                "the plan cache is empty: run the layer (or call conv.active_mask()) once "
                "before freezing its selection"
            )
        self.frozen = True

    def matches(self, weight: Tensor, selection_key: Sequence[Any] | None) -> bool:
        """Whether the cached selection was made for ``weight`` (values, dtype, device) and
        the selection state ``selection_key``."""
        if self.frozen or self._held:
            return self.mask is not None
        if self.mask is None or selection_key is None or self.selection_state is None:
            return False
        if self.mask.is_inference() and not torch.is_inference_mode_enabled():
            return False  # plans of inference tensors, which autograd cannot save: rebuilt
        if self.weights is None or not _same_kind(self.weights, weight):
            return False
        if not _same_values(self.weights, weight):
            self._new_values = True
            return False
        same = len(selection_key) == len(self.selection_state) and all(
            _equal(a, b) for a, b in zip(selection_key, self.selection_state, strict=True)
        )
        self._held = same and self._holds > 0
        return same

    def store(self, weight: Tensor, mask: Tensor, selection_key: Sequence[Any] | None) -> None:
        """Start a new entry: ``mask`` selected for ``weight`` under ``selection_key``
        (copied), no plans yet."""
        w, last = weight.detach(), self.weights
        if (
            self._new_values
            or last is None
            or last.shape != w.shape
            or not torch.equal(last.to(w), w)
        ):
            self.weight_states += 1
        self._new_values = False
        if last is not None and _same_kind(last, w) and not last.is_inference():
            last.copy_(w)  # the key's own memory again: fresh pages are dear on a CPU
        else:
            self.weights = w.clone()
        self.selection_state = (
            None if selection_key is None else tuple(_snapshot(v) for v in selection_key)
        )
        self.mask, self.plans, self.by_group, self.frozen = mask, {}, None, False
        self._held = selection_key is not None and self._holds > 0

    def structure(self, device: torch.device) -> dict[Any, Any]:
        """A dict for what depends on the layer's edges only (edge ids per group, ...), kept
        per device and inference mode: moving the layer starts a new one, and so does leaving
        :func:`torch.inference_mode` (its tensors cannot be saved for backward)."""
        key = (device, torch.is_inference_mode_enabled())
        if self._structure_device != key:
            self._structure, self._structure_device = {}, key
        return self._structure

    # ------------------------------------------------------------------ compiled graphs
    def record(self, plan: Any) -> int:
        """Keep ``plan`` for the backward pass of a compiled graph; returns its token.

        A compiled graph cannot carry the plan from forward to backward as eager autograd
        does (a plan holds Python objects): the forward returns this token and the backward
        takes the plan back with :meth:`recorded`.  The last :data:`TAPE_SIZE` are kept.
        """
        self._serial += 1
        self._tape[self._serial] = plan
        while len(self._tape) > TAPE_SIZE:
            self._tape.popitem(last=False)
        return self._serial

    def recorded(self, token: int) -> Any:
        """The plan recorded under ``token``.

        Raises:
            DNWGraphError: the plan is gone (more than :data:`TAPE_SIZE` forward passes since,
                or the cache was invalidated).
        """
        plan = self._tape.get(token)
        if plan is None:
            raise DNWGraphError(
                "the backward pass of a compiled WiringConv lost the plan of its forward pass: "
                f"run backward before {TAPE_SIZE} more forward passes of the layer, and do not "
                "invalidate its plan cache in between"
            )
        return plan

    # ------------------------------------------------------------------ copies
    def __getstate__(self) -> dict[str, Any]:
        # plans hold sparse tensors, which cannot be deep-copied; they are rebuilt on demand
        state = self.__dict__.copy()
        state.update(
            plans={}, by_group=None, _tape=OrderedDict(), _structure={}, _structure_device=None
        )
        state.update(_holds=0, _held=False)
        return state

    def __repr__(self) -> str:
        what = "empty" if self.mask is None else f"{len(self.plans)} plans"
        return f"PlanCache({what}, frozen={self.frozen}, weight_states={self.weight_states})"
