"""Hugging Face Hub ids and ``push_to_hub`` for pretrained folders (the ``hub`` extra).

``huggingface_hub`` is imported only here, inside the functions that need it. Loading by Hub
id is offline unless asked: :func:`hub_folder` reads the local Hugging Face cache
(``local_files_only=True``), and downloads only with ``local_files_only=False`` (and never
under ``HF_HUB_OFFLINE=1``). Uploading goes through ``huggingface_hub.ModelHubMixin.push_to_hub``,
which writes the folder (:func:`~dnwgraph.models.save_pretrained`, plus the mixin's model card
``README.md``) into a temporary folder and uploads it as one commit.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from torch import nn

from dnwgraph.errors import DNWGraphError, MissingDependencyError

__all__ = ["is_hub_id", "hub_folder", "push_to_hub"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


def is_hub_id(name: str) -> bool:
    """Whether ``name`` reads as a Hub repository id ``owner/name`` (no ``..``, no ``//``).

    Examples:
        >>> is_hub_id("someone/some-model"), is_hub_id("runs/a/b"), is_hub_id("../x")
        (True, False, False)
    """
    return bool(_HUB_ID.match(name)) and ".." not in name and not name.endswith((".", "-"))


def _huggingface_hub(what: str = "Hugging Face Hub ids and push_to_hub need") -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise MissingDependencyError(
            f"{what} the 'huggingface_hub' package: pip install 'dnwgraph[hub]'"
        ) from None
    return huggingface_hub


def hub_folder(
    repo_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = True,
    files: tuple[str, ...] = ("config.json", "model.safetensors"),
) -> Path:
    """The local folder of the Hub repository ``repo_id`` (its ``files`` only).

    Args:
        repo_id (str): ``owner/name``.
        revision (str, optional): a branch, tag or commit. (default: the main branch)
        cache_dir (path, optional): the Hugging Face cache. (default: its usual place)
        local_files_only (bool, optional): read the cache only, never the network.
            (default: ``True``)

    Raises:
        MissingDependencyError: ``huggingface_hub`` is not installed.
        DNWGraphError: the repository is not in the cache (offline) or cannot be fetched.

    Examples:
        >>> hub_folder("someone/never-downloaded")  # doctest: +SKIP
    """
    hub = _huggingface_hub(
        f"{repo_id!r} is no local folder (it is missing), and reading it as a Hub id needs"
    )
    if not isinstance(local_files_only, bool):
        raise DNWGraphError(f"'local_files_only' must be True or False (got {local_files_only!r})")
    try:
        path = hub.snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            allow_patterns=list(files),
        )
    except Exception as err:  # noqa: BLE001 - the hub's errors have no common base but this
        where = "the local Hugging Face cache" if local_files_only else "the Hub"
        hint = " (pass local_files_only=False to download it)" if local_files_only else ""
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise DNWGraphError(
            f"{repo_id!r} is no local folder, and cannot be loaded from {where}{hint}: "
            f"{type(err).__name__}: {first}"
        ) from None
    return Path(path)


def _adapter(hub: Any, save: Any) -> type:
    """A ``ModelHubMixin`` holding a model, whose ``_save_pretrained`` writes our folder."""

    mixin: Any = hub.ModelHubMixin  # a class known only at run time

    class DNWGraphHubModel(mixin, library_name="dnwgraph", tags=["dnwgraph"]):  # type: ignore[misc, call-arg]
        def __init__(self, model: nn.Module) -> None:
            self.model = model

        def _save_pretrained(self, save_directory: Path) -> None:
            save(self.model, save_directory)

    return DNWGraphHubModel


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    save: Any,
    **kwargs: Any,
) -> str:
    """Upload ``model``'s pretrained folder to the Hub repository ``repo_id`` (see
    :func:`dnwgraph.models.push_to_hub`, which passes ``save``).

    Returns:
        str: the URL of the commit.

    Raises:
        MissingDependencyError: ``huggingface_hub`` is not installed.
    """
    hub = _huggingface_hub()
    if not isinstance(repo_id, str) or not is_hub_id(repo_id):
        raise DNWGraphError(f"'repo_id' must be a Hub id 'owner/name' (got {repo_id!r})")
    return str(_adapter(hub, save)(model).push_to_hub(repo_id, **kwargs))
