"""Loading a state dict into a model, with a one-line error that names the keys.

``nn.Module.load_state_dict`` reports a mismatch as a multi-line ``RuntimeError`` whose first
line names no key; every place that loads a file into a model (a checkpoint, a pretrained
folder, a resumed run) goes through :func:`load_state_dict` here instead, so a file of another
model or of another layout of the same model is one :class:`~dnwgraph.errors.DNWGraphError`
line with the first keys that did not match.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from dnwgraph.errors import DNWGraphError

__all__ = ["load_state_dict"]

#: Keys (or shape mismatches) named in a message; the rest are counted.
SHOWN = 3
_TORCH_HEADER = "Error(s) in loading state_dict"


def _keys(items: Sequence[str], how: str) -> str:
    """``"2 keys missing ('a', 'b')"``: how many, and the first :data:`SHOWN` of them."""
    shown = ", ".join(repr(k) for k in items[:SHOWN]) + (", ..." if len(items) > SHOWN else "")
    return f"{len(items)} key{'s' * (len(items) > 1)} {how} ({shown})"


def load_state_dict(
    module: nn.Module,
    state_dict: Mapping[str, Any],
    *,
    strict: bool = True,
    what: str = "the state dict",
) -> Any:
    """``module.load_state_dict(state_dict, strict=strict)``, a mismatch raised in one line.

    The tensors whose keys match are copied before the error is raised, as PyTorch does: a
    module that failed to load is to be thrown away.

    Args:
        module (nn.Module): the model, built with the saved arguments.
        state_dict (mapping): key to tensor, as ``module.state_dict()`` gives.
        strict (bool, optional): every key of ``module`` in ``state_dict`` and no other key.
            (default: ``True``)
        what (str, optional): the subject of the message, e.g. ``"the weights in 'dir'"``.
            (default: ``"the state dict"``)

    Returns:
        the keys that did not match, as ``nn.Module.load_state_dict`` returns them
        (``missing_keys``, ``unexpected_keys``; both empty when ``strict``).

    Raises:
        DNWGraphError: ``strict`` and keys missing or unexpected (how many of each, the first
            ones named); not ``strict`` and no key of ``state_dict`` in ``module`` while the
            module has keys (nothing would be loaded: another model's weights); or a tensor
            of another shape than the module's (named, with both shapes).

    Examples:
        >>> import torch
        >>> model = nn.Sequential(nn.Linear(2, 2))
        >>> load_state_dict(model, {"0.weight": torch.zeros(2, 2), "0.bias": torch.zeros(2)})
        <All keys matched successfully>
        >>> load_state_dict(model, {"layer.weight": torch.zeros(2, 2), "0.bias": torch.zeros(2)})
        Traceback (most recent call last):
        ...
        dnwgraph.errors.DNWGraphError: the state dict does not fit Sequential: 1 key missing \
('0.weight'), 1 key unexpected ('layer.weight')
    """
    name = type(module).__name__
    try:
        result = module.load_state_dict(state_dict, strict=False)
    except RuntimeError as err:  # shape mismatches: raised even when not strict
        lines = [line.strip().rstrip(".") for line in str(err).strip().splitlines()]
        if not lines or not lines[0].startswith(_TORCH_HEADER):
            raise
        problems = lines[1:]
        more = f" ({len(problems)} in all)" if len(problems) > SHOWN else ""
        raise DNWGraphError(
            f"{what} does not fit {name}: {'; '.join(problems[:SHOWN])}{more}"
        ) from None
    missing, unexpected = result.missing_keys, result.unexpected_keys
    if strict and (missing or unexpected):
        parts = [_keys(missing, "missing")] if missing else []
        parts += [_keys(unexpected, "unexpected")] if unexpected else []
        raise DNWGraphError(f"{what} does not fit {name}: {', '.join(parts)}")
    if missing and state_dict and len(unexpected) == len(state_dict):  # not strict, none loaded
        raise DNWGraphError(
            f"{what} shares no key with {name} ({_keys(missing, 'missing')}, "
            f"{_keys(unexpected, 'unexpected')}): the weights of another model? "
            "(strict=False loads a part of the state, not none of it)"
        )
    return result
