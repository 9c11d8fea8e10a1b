r"""Value-keyed caches: :class:`ValueKey`, and the plan cache of a
:class:`~dnwgraph.WiringConv` built on it.

A cache of values derived from tensors (a selection, its sparse matrices) is valid while those
tensors keep their values.  The key is public state only: a copy of each tensor, compared
**by value** (and dtype, device, shape) at every use.  Whatever changes them is seen (an
optimizer step, an in-place edit, even through ``.data``, ``load_state_dict``, ``.to(...)``)
without hooks into the optimizer or private tensor attributes; the comparison reads every
element once (a few microseconds on a CPU for :math:`E` weights, one synchronisation per
tensor on a GPU).  :meth:`ValueKey.hold` compares once for a block of uses in which the
values do not change (a model's forward pass calls a layer once per level).

:class:`PlanCache` keeps a layer's selection and aggregation plans under such a key (the
edge weights and the selection's :meth:`~dnwgraph.Selection.cache_key`): re-selecting the
top-k and building sparse matrices costs more than a small sparse product, so a layer keeps
them while its weights are unchanged (inference, the :math:`T` steps of a recurrent model,
the levels of a static one).  :meth:`PlanCache.freeze` stops comparing (the plans are used as
they are, whatever the weights become) and :meth:`PlanCache.invalidate` drops everything;
``sparsify``'s masks use a :class:`ValueKey` directly.

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
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dnwgraph._tracing import in_func_transform
from dnwgraph.errors import DNWGraphError

#: Why a layer refuses weights transformed by :mod:`torch.func`.
TRANSFORMED_WEIGHTS = (
    "dnwgraph's layers do not run under torch.func transforms of their weights (grad, jacrev "
    "or vmap over the parameters): they keep plans between calls keyed by the weights' "
    "values, which a transform's tensors do not expose; use torch.autograd.grad, or a loop in "
    "place of vmap"
)

#: Plans kept for backward passes of compiled graphs (see :meth:`PlanCache.record`).
TAPE_SIZE = 64


def _snapshot(value: Any, into: Any = None) -> Any:
    """A detached copy of a tensor (other values as they are), written into ``into`` (an
    earlier copy of the same kind) when it can: fresh pages are dear on a CPU."""
    if not isinstance(value, Tensor):
        return value
    if isinstance(into, Tensor) and _same_kind(into, value) and not into.is_inference():
        return into.copy_(value.detach())
    return value.detach().clone()


def _same_kind(a: Tensor, b: Tensor) -> bool:
    return a.dtype == b.dtype and a.device == b.device and a.shape == b.shape


def _same_values(a: Tensor, b: Tensor) -> bool:
    """``torch.equal`` for tensors of the same kind; on a CPU through NumPy, which compares
    2-3x faster (the comparison runs at every call)."""
    numpy = a.device.type == "cpu" and a.dtype != torch.bfloat16
    if numpy and not in_func_transform():  # a transform's tensors have no data pointer
        return bool(np.array_equal(a.detach().numpy(), b.detach().numpy()))
    return torch.equal(a, b)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        both = isinstance(a, Tensor) and isinstance(b, Tensor)
        return both and _same_kind(a, b) and _same_values(a, b)
    return bool(a == b)


class ValueKey:
    """A cache key made of some values: a detached copy of each tensor (its values, dtype,
    device and shape are the key) and the others as they are, compared at every use.

    :meth:`hold` compares once for a block of uses in which the values do not change.

    Attributes:
        values (tuple or None): the values of the last :meth:`store` (tensors copied);
            ``None``: nothing matches.
        unequal (int or None): the position of the value found unequal by the last
            :meth:`matches` (``None``: none was).

    Example:
        >>> import torch
        >>> w = torch.ones(3)
        >>> key = ValueKey()
        >>> key.store([w]); key.matches([w])
        True
        >>> with torch.no_grad():
        ...     _ = w.mul_(2)  # in place: the same tensor, other values
        >>> key.matches([w])
        False
    """

    def __init__(self) -> None:
        self.values: tuple[Any, ...] | None = None
        self.unequal: int | None = None
        self._holds = 0  # open hold() blocks
        self._held = False  # matched inside the open hold() blocks

    def matches(self, values: Sequence[Any]) -> bool:
        """Whether ``values`` equal those of the last :meth:`store` (inside :meth:`hold`,
        after one comparison that matched, without comparing again)."""
        if self._held:
            return self.values is not None
        self.unequal = None
        if self.values is None or len(values) != len(self.values):
            return False
        pairs = enumerate(zip(self.values, values, strict=True))
        self.unequal = next((i for i, (a, b) in pairs if not _equal(a, b)), None)
        self._held = self.unequal is None and self._holds > 0
        return self.unequal is None

    def store(self, values: Sequence[Any]) -> None:
        """Make ``values`` (copied) the key."""
        old = self.values
        if old is None or len(old) != len(values):
            old = (None,) * len(values)
        self.values = tuple(_snapshot(v, o) for v, o in zip(values, old, strict=True))
        self.unequal, self._held = None, self._holds > 0

    def invalidate(self) -> None:
        """Forget the key: nothing matches until the next :meth:`store`."""
        self.values, self.unequal, self._held = None, None, False

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

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_holds": 0, "_held": False}

    def __repr__(self) -> str:
        return f"ValueKey({'empty' if self.values is None else f'{len(self.values)} values'})"


class PlanCache:
    """The selection and the aggregation plans of one :class:`~dnwgraph.WiringConv`, for the
    weight state they were built for.

    Attributes:
        key (ValueKey): the edge weights of the last selection and the selection's
            :meth:`~dnwgraph.Selection.cache_key` then (copied, compared by value; a selection
            whose ``cache_key()`` is ``None`` chooses at every call).
        mask (BoolTensor or None): the selected edges ``[E]``.
        plans (dict): :class:`~dnwgraph.nn.kernels.AggregationPlan` per
            ``(group, first_row, last_row)``, a pull chain's plan under ``"pull"``
            (``dnwgraph.nn.kernels.pull_plan``), and a level executor's run by the selected
            levels under ``"selected levels"`` (``dnwgraph.nn.selected_levels``), built on
            first use: everything derived from one weight state, dropped with it.
        by_group (tuple or None): the selected edges ordered by source group (built on first
            use by a layer with ``source_groups``).
        weight_states (int): distinct weight values seen (drives ``grad_every``): a change of
            dtype or device alone is not a new state.
        frozen (bool): plans are used without comparing the weights (:meth:`freeze`).

    A deep copy (``copy.deepcopy``, pickling) keeps the key and the mask and drops what is
    derived from them: the plans hold sparse tensors, which cannot be deep-copied (rebuilt on
    the next call).
    """

    def __init__(self) -> None:
        self.key = ValueKey()
        self.weight_states = 0
        self._structure: dict[Any, Any] = {}
        self._structure_device: tuple[torch.device, bool] | None = None
        self._serial = 0
        self.invalidate()

    @property
    def weights(self) -> Tensor | None:
        """The key's copy of the edge weights of the last selection."""
        return None if self.key.values is None else self.key.values[0]

    def invalidate(self) -> None:
        """Forget the selection and the plans (and unfreeze): the next call selects again.
        The key stays, so unchanged weights are not counted as a new state."""
        self.mask: Tensor | None = None
        self.plans: dict[Any, Any] = {}  # keyed by the call's Rows (or "pull")
        self.by_group: Any = None
        self.frozen = False
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

    def hold(self) -> contextlib.AbstractContextManager[None]:
        """The key's :meth:`ValueKey.hold`: one comparison of the weights for a block of calls
        (a selection whose ``cache_key()`` is ``None`` still chooses at every call)."""
        return self.key.hold()

    def matches(self, weight: Tensor, selection_key: Sequence[Any] | None) -> bool:
        """Whether the cached selection was made for ``weight`` (values, dtype, device) and
        the selection state ``selection_key``.

        Raises:
            DNWGraphError: the weights are transformed by :mod:`torch.func` (``grad`` or
                ``jacrev`` of the parameters, ``vmap`` over them): such tensors have no values
                to compare.  Transforms of the inputs alone run where the kernel allows.
        """
        transformed = in_func_transform()
        if transformed and torch._C._functorch.is_functorch_wrapped_tensor(weight):
            raise DNWGraphError(TRANSFORMED_WEIGHTS)
        if self.frozen:
            return self.mask is not None
        if self.mask is None or selection_key is None:
            return False
        if self.mask.is_inference() and not torch.is_inference_mode_enabled():
            return False  # plans of inference tensors, which autograd cannot save: rebuilt
        try:
            return self.key.matches([weight, *selection_key])
        except RuntimeError:
            if not transformed:
                raise
            raise DNWGraphError(TRANSFORMED_WEIGHTS) from None  # a wrapped selection state

    def store(self, weight: Tensor, mask: Tensor, selection_key: Sequence[Any] | None) -> None:
        """Start a new entry: ``mask`` selected for ``weight`` under ``selection_key``
        (copied), no plans yet."""
        w, last = weight.detach(), self.weights
        # matches() found other values of the same kind, or they are compared here
        seen = self.key.unequal == 0 and last is not None and _same_kind(last, w)
        if seen or last is None or last.shape != w.shape or not torch.equal(last.to(w), w):
            self.weight_states += 1
        self.key.store([w] if selection_key is None else [w, *selection_key])
        self.mask, self.plans, self.by_group, self.frozen = mask, {}, None, False

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
        return state

    def __repr__(self) -> str:
        what = "empty" if self.mask is None else f"{len(self.plans)} plans"
        return f"PlanCache({what}, frozen={self.frozen}, weight_states={self.weight_states})"
