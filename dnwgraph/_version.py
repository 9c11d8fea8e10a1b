"""The package version, one source for ``dnwgraph.__version__``, ``pyproject.toml`` and what a
saved model or checkpoint records (no imports: ``dnwgraph --version`` reads it cheaply)."""

__version__ = "0.3.0"
