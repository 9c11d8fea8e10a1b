"""Models built on learned wirings, and the model registry.

Importing this package registers every built-in model.
"""

from dnwgraph.models import presets as _presets  # noqa: F401  (registers the neural graphs)
from dnwgraph.models._graph import NeuralGraphClassifier
from dnwgraph.models.continuous import ContinuousTimeNeuralGraph
from dnwgraph.models.counting import Counter, count_macs, count_params, register_counter
from dnwgraph.models.discrete import DiscreteTimeNeuralGraph
from dnwgraph.models.mobilenet import MobileNetV1, MobileNetV1DNW
from dnwgraph.models.pretrained import (
    PretrainedMixin,
    from_pretrained,
    push_to_hub,
    save_pretrained,
)
from dnwgraph.models.registry import create_model, list_models, register_model
from dnwgraph.models.sparsify import density, sparse_wiring, sparsify, unsparsify
from dnwgraph.models.static import StaticNeuralGraph

__all__ = [
    "create_model",
    "list_models",
    "register_model",
    "save_pretrained",
    "from_pretrained",
    "push_to_hub",
    "PretrainedMixin",
    "sparsify",
    "unsparsify",
    "sparse_wiring",
    "density",
    "MobileNetV1DNW",
    "MobileNetV1",
    "StaticNeuralGraph",
    "DiscreteTimeNeuralGraph",
    "ContinuousTimeNeuralGraph",
    "NeuralGraphClassifier",
    "count_params",
    "count_macs",
    "register_counter",
    "Counter",
]


def __dir__() -> list[str]:
    # the public API only, not the submodules imported so far
    return sorted({*__all__, *(n for n in globals() if n.startswith("__"))})
