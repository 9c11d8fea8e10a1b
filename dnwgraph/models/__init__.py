"""Models built on learned wirings, and the model registry.

Importing this package registers every built-in model.
"""

from dnwgraph.models import mobilenet  # noqa: F401  (registers the MobileNetV1 presets)
from dnwgraph.models.registry import create_model, list_models, register_model
from dnwgraph.models.sparsify import sparsify, unsparsify

__all__ = ["create_model", "list_models", "register_model", "sparsify", "unsparsify"]
