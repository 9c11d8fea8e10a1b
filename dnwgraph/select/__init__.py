"""Edge selection: top-k budgets and the strategies that choose the edges used forward."""

from dnwgraph.select.strategies import (
    Selection,
    create_selection,
    list_selections,
    register_selection,
    selection_options,
)
from dnwgraph.select.topk import node_budget, resolve_k, topk_mask

__all__ = [
    "Selection",
    "create_selection",
    "list_selections",
    "register_selection",
    "selection_options",
    "resolve_k",
    "node_budget",
    "topk_mask",
]


def __dir__() -> list[str]:
    # the public API only, not the submodules imported so far
    return sorted({*__all__, *(n for n in globals() if n.startswith("__"))})
