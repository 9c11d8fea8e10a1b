"""Reading what the user points at: a run, a checkpoint, a pretrained-model folder, a wiring
snapshot or a wiring file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dnwgraph.errors import DNWGraphError
from dnwgraph.graph import list_formats, read_wiring
from dnwgraph.models.pretrained import CONFIG_NAME, WEIGHTS_NAME
from dnwgraph.models.views import is_snapshot
from dnwgraph.runs.checkpoint import is_pretrained_source, load_model, safe_torch_load
from dnwgraph.runs.run import SNAPSHOT_FORMAT, Run, load_snapshot
from dnwgraph.typing import PathLikeStr

__all__ = ["load_source", "is_pretrained_source"]


def load_source(path: PathLikeStr) -> Any:
    """What a path holds, ready for the analysis functions.

    * a run folder, a ``checkpoint.pt`` or a pretrained-model folder (``save_pretrained``) →
      the trained model (:func:`dnwgraph.load_model`);
    * a wiring snapshot ``wiring/epoch_XXXX.pt`` → the snapshot dict;
    * a wiring file (``.csv``, ``.txt``, ``.edgelist``, ``.json``, ``.graphml``, ``.gexf`` or a
      registered format, :func:`dnwgraph.graph.list_formats`) → a :class:`~dnwgraph.Wiring`.

    Raises:
        FileNotFoundError: ``path`` does not exist, or a folder that is neither a run nor a
            pretrained-model folder.
        ValueError: a corrupt or unknown ``.pt`` file, a malformed wiring file, or another
            extension (the message lists the accepted ones).

    Examples:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.csv"
        >>> _ = path.write_text("source,target\\n0,1\\n1,2\\n")
        >>> load_source(path)
        Wiring(num_nodes=3, num_edges=2, inputs=1, outputs=1, acyclic=True)
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such run, checkpoint or wiring file: '{path}'")
    if path.is_dir():
        checkpoint = Run(path).checkpoint_path
        if not checkpoint.is_file() and not is_pretrained_source(path):
            raise FileNotFoundError(
                f"'{path}' is a folder without {checkpoint.name} (not a run), nor "
                f"{CONFIG_NAME} and {WEIGHTS_NAME} (not a pretrained-model folder)"
            )
        return _load_model(path)
    suffix = path.suffix.lower()
    if suffix in list_formats():
        return read_wiring(path)
    if suffix in (".pt", ".pth"):
        obj = safe_torch_load(path, "torch file")
        if isinstance(obj, dict) and "format" in obj and "model_state" in obj:
            return _load_model(path)
        if isinstance(obj, dict) and obj.get("format") == SNAPSHOT_FORMAT:
            return load_snapshot(path)  # a run's snapshot: its checksum checked
        if is_snapshot(obj):
            return obj
        keys = sorted(map(str, obj))[:8] if isinstance(obj, dict) else type(obj).__name__
        raise DNWGraphError(
            f"'{path}' is neither a dnwgraph checkpoint (keys format, model, model_state, ...) "
            f"nor a wiring snapshot ({{module: {{edge_index, edge_weight, active, num_nodes}}}}) "
            f"(got {keys})"
        )
    raise DNWGraphError(
        f"cannot read '{path}': expected a run folder, a .pt checkpoint or snapshot, or a "
        f"wiring file ({', '.join(list_formats())}) (got '{path.suffix}')"
    )


def _load_model(path: Path) -> torch.nn.Module:
    return load_model(path)
