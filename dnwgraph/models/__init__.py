"""Models built on learned wirings, and the model registry.

Importing this package registers every built-in model.
"""

from dnwgraph.models.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
