"""The parameters of one learned wiring, as one object: :class:`WiringSpec`.

The edge budget, the selection strategy and its options, the aggregation backend and the node
operation go together through :class:`~dnwgraph.nn.LevelExecutor`, the three graph models and
the MobileNet stages.  Each of them takes a ``WiringSpec`` in place of ``ratio`` or, as before,
the separate keyword arguments (:func:`as_spec` turns either into a spec).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dnwgraph.errors import DNWGraphTypeError
from dnwgraph.typing import Ratio, Scope

__all__ = ["WiringSpec", "as_spec"]


@dataclass(frozen=True)
class WiringSpec:
    r"""How one wiring learns: which edges it keeps and what its nodes compute.

    Args:
        ratio (int or float): the edge budget :math:`k` (``int``: edges kept, ``float``:
            fraction kept).
        selection (str): a registered selection strategy. (default: ``"dnw"``)
        scope (str, optional): the strategy's scope (``"global"`` or ``"per_node"``); ``None``
            takes the strategy's default.
        impl (str): the aggregation backend of :class:`~dnwgraph.WiringConv`.
            (default: ``"auto"``)
        node_op (str): a registered node operation. (default: ``"conv2d"``)
        node_op_options (dict): keywords of the node operation. (default: ``{}``)
        selection_options (dict): keywords of the strategy (``seed``, ``mask``,
            ``drop_rate``). (default: ``{}``)

    Examples:
        >>> spec = WiringSpec(0.5, "random", node_op="neuron", selection_options={"seed": 0})
        >>> spec.conv_kwargs()
        {'scope': None, 'impl': 'auto', 'seed': 0}
        >>> spec.replace(ratio=4).ratio
        4
    """

    ratio: Ratio
    selection: str = "dnw"
    scope: Scope | None = None
    impl: str = "auto"
    node_op: str = "conv2d"
    node_op_options: Mapping[str, Any] = field(default_factory=dict)
    selection_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "node_op_options", dict(self.node_op_options or {}))
        object.__setattr__(self, "selection_options", dict(self.selection_options or {}))

    def conv_kwargs(self) -> dict[str, Any]:
        """The keywords of ``WiringConv(wiring, spec.ratio, spec.selection, **kwargs)``."""
        return {"scope": self.scope, "impl": self.impl, **self.selection_options}

    def replace(self, **changes: Any) -> WiringSpec:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


_DEFAULTS = {"selection": "dnw", "scope": None, "impl": "auto", "node_op": "conv2d"}


def as_spec(
    ratio: Ratio | WiringSpec,
    selection: str = "dnw",
    *,
    scope: Scope | None = None,
    impl: str = "auto",
    node_op: str = "conv2d",
    node_op_options: Mapping[str, Any] | None = None,
    **selection_options: Any,
) -> WiringSpec:
    """A :class:`WiringSpec` from a spec or from the separate arguments (not both).

    Raises:
        TypeError: a spec together with a non-default separate argument.

    Examples:
        >>> as_spec(0.5, "random", seed=1) == WiringSpec(0.5, "random",
        ...                                               selection_options={"seed": 1})
        True
        >>> as_spec(WiringSpec(3), impl="dense")
        Traceback (most recent call last):
        ...
        dnwgraph.errors.DNWGraphTypeError: give the wiring parameters ... and ['impl'])
    """
    if not isinstance(ratio, WiringSpec):
        return WiringSpec(
            ratio,
            selection,
            scope,
            impl,
            node_op,
            dict(node_op_options or {}),
            dict(selection_options),
        )
    given = dict(selection=selection, scope=scope, impl=impl, node_op=node_op)
    extra = [k for k, v in given.items() if v != _DEFAULTS[k]]
    extra += ["node_op_options"] if node_op_options else []
    extra += sorted(selection_options)
    if extra:
        raise DNWGraphTypeError(
            "give the wiring parameters as a WiringSpec or as separate arguments, not both "
            f"(got a WiringSpec and {extra})"
        )
    return ratio
