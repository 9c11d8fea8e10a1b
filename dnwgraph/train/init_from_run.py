"""Start a run from another run: ``init.mode`` ``finetune`` or ``lottery`` (``init.from_run``).

* ``finetune``: the source run's trained weights, with each wiring frozen to the top-k edges of
  its trained edge weights (selection ``fixed``);
* ``lottery``: the same frozen wiring, with the weights reset to the source run's
  initialisation (its initial weights, :meth:`dnwgraph.runs.Run.initial_weights`) — the
  lottery-ticket experiment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from dnwgraph.errors import DNWGraphError
from dnwgraph.models.state_dict import load_state_dict
from dnwgraph.runs.checkpoint import CheckpointError, load_checkpoint
from dnwgraph.runs.run import Run
from dnwgraph.train.config import ConfigError, InitSection
from dnwgraph.train.metrics import wiring_convs

__all__ = ["apply_init"]


def _check_compatible(model: nn.Module, result: Any, source: Path) -> None:
    """Only selection buffers (masks) may differ between a source run and a fixed-mask model."""
    bad = [
        k
        for k in (*result.missing_keys, *result.unexpected_keys)
        if ".selection." not in k and not k.startswith("selection.")
    ]
    if bad:
        raise ConfigError(
            f"init.from_run={str(source)!r} holds a different model (state-dict keys {bad[:5]} "
            f"do not match); use a run of the same model"
        )


def apply_init(model: nn.Module, init: InitSection, state: dict[str, Any] | None = None) -> None:
    """Fine-tune (trained weights, frozen top-k mask) or lottery (mask of the trained weights,
    weights reset to the source run's initialisation): ``model`` is changed in place.
    ``state`` is the source run's checkpoint, when already loaded.

    Raises:
        ConfigError: the source run holds another model, or ``model`` has no ``WiringConv``
            or one whose selection cannot be frozen.
        CheckpointError: the source run's checkpoint (or, for ``lottery``, its initial
            weights) is missing or unreadable.

    Example:
        >>> from dnwgraph import create_model
        >>> model = create_model("mnist1d_static", selection="fixed")
        >>> apply_init(model, InitSection(from_run="no/such/run", mode="finetune"))
        Traceback (most recent call last):
        ...
        dnwgraph.runs.checkpoint.CheckpointError: no checkpoint at 'no/such/run'
    """
    source = Run(str(init.from_run))
    if state is None:
        state = load_checkpoint(source.path)
    try:
        result = load_state_dict(
            model, state["model_state"], strict=False, what=f"init.from_run={str(source.path)!r}"
        )
    except DNWGraphError as err:
        raise ConfigError(str(err)) from None
    _check_compatible(model, result, source.path)
    convs = wiring_convs(model)
    if not convs:
        raise ConfigError("init.mode needs a model with at least one WiringConv")
    for name, conv in convs.items():
        if not hasattr(conv.selection, "freeze"):
            raise ConfigError(
                f"init.mode needs selection 'fixed' ({name} uses {conv.selection.name!r})"
            )
        conv.selection.freeze(conv.edge_weight.detach())
    if init.mode == "lottery":
        if not source.init_path.is_file():
            raise CheckpointError(
                f"init.mode='lottery' needs {str(source.init_path)!r} (the source run's "
                "initial weights)"
            )
        weights = {k: v for k, v in source.initial_weights().items() if ".selection." not in k}
        _check_compatible(model, model.load_state_dict(weights, strict=False), source.path)
