"""dnwgraph: Discovering Neural Wirings (Wortsman, Farhadi & Rastegari, NeurIPS 2019) on PyG.

Every channel is a node of an explicit graph whose edge weights are learned; the forward pass
uses the top-k edges by magnitude, the backward pass sends a straight-through gradient to every
candidate edge. See ``docs/concepts.md``.

Public names are resolved lazily (PEP 562) so that ``dnwgraph --help`` does not pay for
importing torch and torch_geometric.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from dnwgraph._version import __version__

# name -> module that defines it
_EXPORTS: dict[str, str] = {
    # errors (no torch import)
    "DNWGraphError": "dnwgraph.errors",
    # graph/
    "Wiring": "dnwgraph.graph",
    "CycleError": "dnwgraph.graph",
    "block_dag": "dnwgraph.graph",
    "layered": "dnwgraph.graph",
    "complete": "dnwgraph.graph",
    "random_dag": "dnwgraph.graph",
    # select/
    "resolve_k": "dnwgraph.select",
    "topk_mask": "dnwgraph.select",
    "Selection": "dnwgraph.select",
    "create_selection": "dnwgraph.select",
    "list_selections": "dnwgraph.select",
    "register_selection": "dnwgraph.select",
    # nn/
    "WiringConv": "dnwgraph.nn",
    "WiringSpec": "dnwgraph.nn",
    # models/
    "create_model": "dnwgraph.models",
    "list_models": "dnwgraph.models",
    "register_model": "dnwgraph.models",
    "save_pretrained": "dnwgraph.models",
    "from_pretrained": "dnwgraph.models",
    "StaticNeuralGraph": "dnwgraph.models",
    "DiscreteTimeNeuralGraph": "dnwgraph.models",
    "ContinuousTimeNeuralGraph": "dnwgraph.models",
    "count_params": "dnwgraph.models",
    "count_macs": "dnwgraph.models",
    "sparsify": "dnwgraph.models",
    "unsparsify": "dnwgraph.models",
    # train/
    "load_model": "dnwgraph.train",
    # analysis/
    "to_networkx": "dnwgraph.analysis",
    "to_data": "dnwgraph.analysis",
    "save_wiring": "dnwgraph.analysis",
    "compact": "dnwgraph.analysis",
}

__all__ = [
    "__version__",
    "DNWGraphError",
    "Wiring",
    "CycleError",
    "block_dag",
    "layered",
    "complete",
    "random_dag",
    "resolve_k",
    "topk_mask",
    "Selection",
    "create_selection",
    "list_selections",
    "register_selection",
    "WiringConv",
    "WiringSpec",
    "create_model",
    "list_models",
    "register_model",
    "save_pretrained",
    "from_pretrained",
    "StaticNeuralGraph",
    "DiscreteTimeNeuralGraph",
    "ContinuousTimeNeuralGraph",
    "count_params",
    "count_macs",
    "sparsify",
    "unsparsify",
    "load_model",
    "to_networkx",
    "to_data",
    "save_wiring",
    "compact",
]


#: The subpackages, reachable as attributes after ``import dnwgraph`` alone (as the docs write
#: ``dnwgraph.models.push_to_hub``), imported on first use.
_SUBPACKAGES = ("analysis", "graph", "models", "nn", "runs", "select", "train")


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return import_module(f"dnwgraph.{name}")  # the import binds it in this module
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dnwgraph' has no attribute '{name}'")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    # the public API only: not the helpers of this file, nor the submodules imported so far
    return sorted({*__all__, *(n for n in globals() if n.startswith("__"))})
