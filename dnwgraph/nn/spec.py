"""The parameters of one learned wiring, as one object: :class:`WiringSpec`.

The edge budget, the selection strategy and its options, the aggregation backend, the
initialisation of the edge weights and the node operation travel together, as one argument
``spec``, through :class:`~dnwgraph.nn.LevelExecutor`, the three graph models and the
MobileNet stages.  :meth:`WiringSpec.conv_kwargs` is the one place that turns a spec into the
keywords of :class:`~dnwgraph.WiringConv`.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.nn.node_ops import NODE_OPS, node_op_options
from dnwgraph.nn.wiring_conv import FAN_INS, impls
from dnwgraph.select.strategies import SELECTIONS, selection_options
from dnwgraph.select.topk import check_scope
from dnwgraph.typing import Ratio, Scope

__all__ = ["WiringSpec", "check_spec"]

#: The fields that are keywords of :class:`~dnwgraph.WiringConv` (besides the selection
#: options); a selection option may not take one of these names.
_CONV_FIELDS = ("scope", "impl", "fan_in", "grad_every")


@dataclass(frozen=True)
class WiringSpec:
    r"""How one wiring learns: which edges it keeps, how its weights start and what its nodes
    compute.  Every field is checked once, here.

    Args:
        ratio (int or float): the edge budget :math:`k` (``int``: edges kept, ``float`` in
            (0, 1]: fraction of the candidates kept; checked against the candidates by the
            layer).
        selection (str): a registered selection strategy
            (:func:`~dnwgraph.list_selections`). (default: ``"dnw"``)
        scope (str, optional): the strategy's scope (``"global"`` or ``"per_node"``); ``None``
            takes the strategy's default. (default: ``None``)
        impl (str): the aggregation backend of :class:`~dnwgraph.WiringConv` (``"auto"``,
            ``"sparse"``, ``"scatter"``, ``"dense"``). (default: ``"auto"``)
        node_op (str): a registered node operation
            (:func:`~dnwgraph.nn.list_node_ops`). (default: ``"conv2d"``)
        node_op_options (dict): keywords of the node operation. (default: ``{}``)
        selection_options (dict): keywords of the strategy (``seed``, ``mask``,
            ``drop_rate``). (default: ``{}``)
        fan_in (str, optional): the fan-in scaling the initial edge weights
            (``"selected"`` or ``"candidates"``, see :class:`~dnwgraph.WiringConv`);
            ``None`` takes the model's default (``"selected"``; the MobileNet stages and
            classifier: ``"candidates"``, the reference code's). (default: ``None``)
        grad_every (int): give every candidate its straight-through gradient every
            ``grad_every``-th optimizer step only (see :class:`~dnwgraph.WiringConv`).
            (default: ``1``)

    Raises:
        ValueError: an unknown selection, scope, impl, node op or fan-in, a ``grad_every``
            below 1, or a selection option the strategy does not take (the message names
            the field and lists the valid values).
        TypeError: options that are not a mapping, or a node-op option the node op does not
            take (the message lists the ones it takes and the closest).

    Examples:
        >>> spec = WiringSpec(0.5, "random", node_op="neuron", selection_options={"seed": 0})
        >>> spec.conv_kwargs()
        {'scope': None, 'impl': 'auto', 'grad_every': 1, 'seed': 0}
        >>> spec.replace(ratio=4).ratio
        4
        >>> WiringSpec(4, impl="fast")
        Traceback (most recent call last):
        ...
        dnwgraph.errors.DNWGraphError: 'impl' must be one of ['auto', ...] (got 'fast')
    """

    ratio: Ratio
    selection: str = "dnw"
    _: KW_ONLY
    scope: Scope | None = None
    impl: str = "auto"
    node_op: str = "conv2d"
    node_op_options: Mapping[str, Any] = field(default_factory=dict)
    selection_options: Mapping[str, Any] = field(default_factory=dict)
    fan_in: str | None = None
    grad_every: int = 1

    def __post_init__(self) -> None:
        for name in ("node_op_options", "selection_options"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Mapping):
                raise DNWGraphTypeError(
                    f"'{name}' must be a mapping of keywords (got {type(value).__name__})"
                )
            object.__setattr__(self, name, dict(value or {}))
        SELECTIONS.get(self.selection)  # an unknown name: the error lists the valid ones
        NODE_OPS.get(self.node_op)
        if self.scope is not None:
            check_scope(self.scope)
        if self.impl not in impls():
            raise DNWGraphError(f"'impl' must be one of {impls()} (got {self.impl!r})")
        if self.fan_in is not None and self.fan_in not in FAN_INS:
            raise DNWGraphError(f"'fan_in' must be one of {[*FAN_INS, None]} (got {self.fan_in!r})")
        every = self.grad_every
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise DNWGraphError(f"'grad_every' must be a positive int (got {every!r})")
        self._check_selection_options()
        self._check_node_op_options()

    def _check_selection_options(self) -> None:
        given = set(self.selection_options)
        clash = sorted(given & set(_CONV_FIELDS))
        if clash:
            raise DNWGraphError(
                f"{clash} are fields of the WiringSpec, not 'selection_options' "
                f"(got selection_options={sorted(given)})"
            )
        valid = selection_options(self.selection)
        unknown = sorted(given - set(valid))
        if unknown:
            raise DNWGraphError(
                f"'selection_options' of selection {self.selection!r} must be among "
                f"{[v for v in valid if v != 'scope']} (got {unknown})"
            )

    def _check_node_op_options(self) -> None:
        valid = node_op_options(self.node_op)
        if valid is None:  # the node op takes any keyword
            return
        unknown = sorted(set(self.node_op_options) - set(valid), key=repr)
        if unknown:
            close = difflib.get_close_matches(str(unknown[0]), valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DNWGraphTypeError(
                f"unknown 'node_op_options' {unknown} for node op {self.node_op!r}{hint} "
                f"(valid: {', '.join(valid) or 'none'})"
            )

    def conv_kwargs(self) -> dict[str, Any]:
        """The keywords of ``WiringConv(wiring, spec.ratio, spec.selection, **kwargs)``
        (``fan_in`` only when the spec sets it)."""
        kwargs: dict[str, Any] = {"scope": self.scope, "impl": self.impl}
        if self.fan_in is not None:
            kwargs["fan_in"] = self.fan_in
        kwargs["grad_every"] = self.grad_every
        return {**kwargs, **self.selection_options}

    def replace(self, **changes: Any) -> WiringSpec:
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)


def check_spec(spec: Any) -> WiringSpec:
    """``spec`` if it is a :class:`WiringSpec`, else a one-line type error saying how to build
    one (what a model or layer calls where the spec enters).

    Examples:
        >>> check_spec(3)
        Traceback (most recent call last):
        ...
        dnwgraph.errors.DNWGraphTypeError: 'spec' must be a WiringSpec, e.g. WiringSpec(ratio, \
selection, impl=..., node_op=...) (got int 3)
    """
    if not isinstance(spec, WiringSpec):
        raise DNWGraphTypeError(
            "'spec' must be a WiringSpec, e.g. WiringSpec(ratio, selection, impl=..., "
            f"node_op=...) (got {type(spec).__name__} {spec!r:.40})"
        )
    return spec
