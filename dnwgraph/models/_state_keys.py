"""State dicts saved before a model's submodules were renamed still load.

A model whose submodule got a new name registers :class:`RenamedKeys` as a
``load_state_dict`` pre-hook: the keys of the old layout (a checkpoint, a pretrained folder,
an ``init.pt``) are moved to the new names before PyTorch matches them.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> def renamed(key):  # "old.weight" -> "new.weight"
    ...     return "new." + key[4:] if key.startswith("old.") else None
    >>> model = nn.Module()
    >>> model.new = nn.Linear(2, 2)
    >>> _ = add_renamed_keys(model, renamed)
    >>> old = {"old." + k: torch.zeros_like(v) for k, v in model.new.state_dict().items()}
    >>> model.load_state_dict(old)
    <All keys matched successfully>
    >>> float(model.new.weight.detach().abs().sum())
    0.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = ["RenamedKeys", "add_renamed_keys"]


class RenamedKeys:
    """A ``load_state_dict`` pre-hook that moves every key of the module's old layout to its
    new name.

    Args:
        rename (callable): the new name of a key, relative to the module (``None``: the key
            keeps its name).  A module-level function, so that the module still pickles.
    """

    def __init__(self, rename: Callable[[str], str | None]) -> None:
        self.rename = rename

    def __call__(
        self, module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any
    ) -> None:
        for key in [k for k in state_dict if k.startswith(prefix)]:
            new = self.rename(key[len(prefix) :])
            # both layouts at once: leave the old key for strict loading to report
            if new is not None and prefix + new not in state_dict:
                state_dict[prefix + new] = state_dict.pop(key)


def add_renamed_keys(module: nn.Module, rename: Callable[[str], str | None]) -> RemovableHandle:
    """Register :class:`RenamedKeys` ``(rename)`` on ``module``; returns the hook's handle."""
    # the private method that torch >= 2.5's public register_load_state_dict_pre_hook
    # calls, with the same signature: the package supports torch >= 2.2
    return module._register_load_state_dict_pre_hook(RenamedKeys(rename), with_module=True)
