r"""Wiring methods whose mask is module state, changed at chosen weight states: the base of
``rigl``, ``set``, ``gmp``, ``snip`` and of a user's own method (``docs/methods.md``).

A :class:`ScheduledSelection` keeps its mask as a buffer and counts the weight states of its
layer: the layer selects whenever its weights change (after an optimizer step), and each new
state :math:`t` (``0`` for the weights the layer first runs with) calls
:meth:`ScheduledSelection.update` once, with the gradient :math:`g = \partial L/\partial w` of
every candidate from the backward passes of state :math:`t - 1` when
:meth:`ScheduledSelection.wants_gradients` asked for it.  A plain loop, ``loss.backward();
opt.step()`` with any optimizer and ``zero_grad`` anywhere, needs no extra call:

* the gradient comes from a hook on the layer's ``edge_weight`` (DNW's straight-through
  backward gives every candidate its gradient at those states, no extra pass), summed over the
  backward passes of the state and averaged over the processes of a distributed run when the
  update uses it (every process then chooses the same edges: it has the same weights, the same
  averaged gradient and the same seeds);
* the optimizer sees :meth:`ScheduledSelection.optimizer_gradient` of it (by default zero for
  the edges outside the mask, so that they stay put);
* the step, the mask, the weights the mask was chosen for and a gradient not yet used are
  saved with the module (``state_dict``): a run resumed from any point continues exactly.
  The last two are state-dict entries but not buffers, so ``DistributedDataParallel`` does not
  broadcast them.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.hooks import RemovableHandle

from dnwgraph.errors import DNWGraphError
from dnwgraph.select.strategies import Selection, SelectionHost
from dnwgraph.select.topk import topk_mask

#: State-dict entries of a :class:`ScheduledSelection` that are not buffers.
EXTRA = ("seen", "pending")


def check_step(value: Any, name: str, low: int = 0) -> int:
    """``value`` as an int ``>= low``.

    Raises:
        DNWGraphError: otherwise (naming ``name`` and the valid range).

    Examples:
        >>> check_step(100, "frequency", 1)
        100
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise DNWGraphError(f"'{name}' must be an int >= {low} (got {value!r})")
    return value


def check_fraction(value: Any, name: str) -> float:
    """``value`` as a float in ``[0, 1]``.

    Raises:
        DNWGraphError: otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise DNWGraphError(f"'{name}' must be a float in [0, 1] (got {value!r})")
    return float(value)


class ScheduledSelection(Selection):
    r"""Base class: a mask kept as module state and changed by :meth:`update` when the
    layer's weights reach a new state (see the module docstring).

    Subclasses implement :meth:`update` and, when they use gradients,
    :meth:`wants_gradients` (and set :attr:`needs_gradients`).  :meth:`initial_mask`
    (default: the top-k by :math:`|w|`) is the mask of state ``0``.  Helpers:
    :meth:`regrow` (drop by one score, grow by another).

    Args:
        ratio (int or float): the edge budget (the mask's size after :meth:`update`).
        **kwargs: as :class:`Selection` (``scope``).

    Attributes:
        mask (BoolTensor): the edges used ``[E]`` (a buffer).
        step (LongTensor): index of the current weight state (``-1`` before the first).
    """

    #: whether :meth:`update` may need the gradient of every candidate
    needs_gradients: bool = False
    reads_weights_only = False  # update() edits the weights, a hook takes their gradient
    mask: Tensor
    step: Tensor

    def __init__(self, ratio: Any, **kwargs: Any) -> None:
        super().__init__(ratio, **kwargs)
        self.straight_through = self.needs_gradients
        self.register_buffer("mask", torch.zeros(self.num_edges, dtype=torch.bool))
        self.register_buffer("step", torch.tensor(-1, dtype=torch.long))
        self.seen: Tensor | None = None  # the weights the mask was last chosen for
        self.pending: Tensor | None = None  # summed gradient not yet used by update()
        self._hooked: Any = None  # weak reference to the hooked edge_weight
        self._handle: RemovableHandle | None = None  # its hook, removed by detach()

    # ------------------------------------------------------------------ the protocol
    def initial_mask(self, edge_weight: Tensor) -> Tensor:
        """The mask of weight state ``0`` (default: the top-k by :math:`|w|`)."""
        return self.topk(edge_weight)

    def wants_gradients(self, step: int) -> bool:
        """Whether :meth:`update` at state ``step + 1`` uses the gradient of every candidate
        from the backward passes of state ``step`` (default: never)."""
        return False

    def update(self, edge_weight: Tensor, step: int, grad: Tensor | None) -> None:
        """Change :attr:`mask` (and ``edge_weight``, in place) at weight state ``step >= 1``.

        Args:
            edge_weight (Tensor): the layer's weights ``[E]`` (runs under ``no_grad``).
            step (int): the new weight state.
            grad (Tensor or None): :math:`\\partial L/\\partial w` ``[E]`` of every candidate
                from the backward passes of state ``step - 1`` (summed over them, averaged
                over processes) when :meth:`wants_gradients` asked for it, else ``None``.
        """
        raise NotImplementedError

    def optimizer_gradient(self, grad: Tensor) -> Tensor:
        """The gradient the optimizer sees at a state that captured ``grad`` (every
        candidate's): zero outside the mask (default)."""
        return grad * self.mask.to(grad.dtype)

    # ------------------------------------------------------------------ helpers
    def regrow(self, drop_score: Tensor, grow_score: Tensor, fraction: float) -> Tensor:
        """The edges of :attr:`mask` after dropping ``fraction`` of them (per node with
        ``scope="per_node"``; rounded) with the smallest ``drop_score`` and growing as many
        edges outside the kept ones with the largest ``grow_score`` (an edge just dropped may
        grow back).  Returns the new mask; ties go to the lower edge id."""
        neg = torch.tensor(-math.inf, device=drop_score.device)
        active = self.mask
        if self.scope == "global":
            count = int(active.sum())
            drop: Any = round(fraction * count)
            keep = topk_mask(torch.where(active, drop_score, neg), count - drop)
            return topk_mask(torch.where(keep, -neg, grow_score), count)
        counts = torch.bincount(self.target[active], minlength=self.num_nodes)
        drop = torch.round(fraction * counts).long()
        scope, target = self.scope, self.target
        keep = topk_mask(
            torch.where(active, drop_score, neg), counts - drop, scope=scope, target=target
        )
        return topk_mask(torch.where(keep, -neg, grow_score), counts, scope=scope, target=target)

    # ------------------------------------------------------------------ machinery
    def attach(self, layer: SelectionHost) -> None:
        if layer.grad_every != 1:
            raise DNWGraphError(
                f"'grad_every' applies to dnw and complete; selection {self.name!r} asks for "
                f"gradients itself (got grad_every={layer.grad_every})"
            )
        super().attach(layer)
        if self.needs_gradients and not layer.edge_weight.requires_grad:
            raise DNWGraphError(
                f"selection {self.name!r} needs the gradient of the edge weights, but the "
                "layer's edge_weight does not require grad (set requires_grad_(True))"
            )
        self._hook(layer.edge_weight)

    def all_gradients(self, step: int) -> bool:
        return self.needs_gradients and self.wants_gradients(int(self.step))

    def cache_key(self) -> tuple[Any, ...] | None:
        return (self.mask, self.step, self.pending is None)

    def forward(self, edge_weight: Tensor) -> Tensor:
        self._hook(edge_weight)
        w = edge_weight.detach()
        seen = self.seen
        if seen is not None and seen.shape == w.shape and torch.equal(seen.to(w), w):
            return self.mask
        with torch.no_grad():
            self.step += 1
            t = int(self.step)
            if t == 0:
                self.mask.copy_(self.initial_mask(w))
            else:
                self.update(edge_weight, t, self.take_pending(w))
            self.seen = edge_weight.detach().clone()
        return self.mask

    def _hook(self, edge_weight: Tensor) -> None:
        """Hook ``edge_weight`` (once; again on the copy of a deep-copied layer)."""
        if not self.needs_gradients or not edge_weight.requires_grad:
            return
        if self._hooked is None or self._hooked() is not edge_weight:
            self._handle = edge_weight.register_hook(self._on_gradient)
            self._hooked = weakref.ref(edge_weight)

    def detach(self) -> None:
        """Remove the gradient hook and forget the captured gradient."""
        if self._handle is not None:
            self._handle.remove()
        self._handle, self._hooked, self.pending = None, None, None

    def _on_gradient(self, grad: Tensor) -> Tensor | None:
        if int(self.step) < 0 or not self.wants_gradients(int(self.step)):
            return None
        g = grad.detach().float()
        self.pending = g.clone() if self.pending is None else self.pending + g
        return self.optimizer_gradient(grad)

    def take_pending(self, like: Tensor) -> Tensor | None:
        """The captured gradient (averaged over the processes of a distributed run, on the
        device of ``like``), forgotten here; ``None`` when nothing was captured."""
        grad, self.pending = self.pending, None
        if grad is None:
            return None
        grad = grad.to(like.device)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(grad)  # every process chooses the same edges
            grad /= dist.get_world_size()
        return grad

    # ------------------------------------------------------------------ state
    def _save_to_state_dict(self, destination: Any, prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for name in EXTRA:
            value = getattr(self, name)
            destination[prefix + name] = torch.empty(0) if value is None else value.detach()

    def _load_from_state_dict(
        self,
        state_dict: Any,
        prefix: str,
        local_metadata: Any,
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        for name in EXTRA:
            key = prefix + name
            if key in state_dict:
                value = state_dict[key]
                setattr(self, name, value.detach().clone() if value.numel() else None)
            elif strict:
                missing_keys.append(key)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        for name in EXTRA:
            if prefix + name in unexpected_keys:
                unexpected_keys.remove(prefix + name)

    def __getstate__(self) -> dict[str, Any]:
        # a copy hooks its own layer's weights
        return {**self.__dict__, "_hooked": None, "_handle": None}

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, step={int(self.step)}"
