"""Per-epoch metrics: wiring statistics, wiring snapshots and TensorBoard.

``metrics.csv`` and the snapshot files are written through :mod:`dnwgraph.runs.run`.

Wiring statistics are read from every :class:`~dnwgraph.WiringConv` of a model (via
``model.modules()``) and summed over them:

* ``selected_edges``: edges in ``active_mask()`` (what the forward pass uses in evaluation).
* ``swapped_in`` / ``swapped_out``: edges active now but not at the end of the previous epoch
  (epoch 0 is the wiring at initialisation), and the reverse.  With a fixed budget the two are
  equal for global top-k.
* ``no_input_nodes``: *hidden* nodes with no selected incoming edge; ``no_output_nodes``:
  hidden nodes with no selected outgoing edge.  A node is hidden if it is neither an input nor
  an output node of the model's ``wiring`` (when the model has a ``.wiring`` with as many nodes
  as the conv); otherwise, if it has at least one candidate incoming *and* one candidate
  outgoing edge (which, in a DAG, excludes exactly the sources and the sinks).  Such nodes are
  dead ends: a node without inputs outputs a constant (zero at the initial norm shift) that
  carries no information about the input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dnwgraph.runs.run import COLUMNS
from dnwgraph.typing import PathLikeStr

__all__ = [
    "wiring_convs",
    "active_masks",
    "wiring_stats",
    "wiring_snapshot",
    "TensorBoardLogger",
    "tensorboard_tag",
    "histogram_tag",
]


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)  # DistributedDataParallel


def wiring_convs(model: nn.Module) -> dict[str, nn.Module]:
    """The model's :class:`~dnwgraph.WiringConv` modules by qualified name (in module order).

    Examples:
        >>> from dnwgraph import WiringConv, Wiring
        >>> net = nn.Sequential(WiringConv(Wiring([(0, 1), (1, 2)], num_nodes=3), ratio=1))
        >>> list(wiring_convs(net))
        ['0']
    """
    from dnwgraph.nn import WiringConv

    return {n: m for n, m in _unwrap(model).named_modules() if isinstance(m, WiringConv)}


@torch.no_grad()
def active_masks(model: nn.Module) -> dict[str, Tensor]:
    """``{name: active_mask() on CPU}`` for every wiring of the model."""
    return {n: c.active_mask().detach().cpu().clone() for n, c in wiring_convs(model).items()}


def _hidden_nodes(model: nn.Module, conv: nn.Module) -> Tensor:
    """Boolean ``[N]``: the nodes whose missing inputs/outputs are counted (see module doc)."""
    n = conv.num_nodes
    wiring = getattr(_unwrap(model), "wiring", None)
    if wiring is not None and int(getattr(wiring, "num_nodes", -1)) == n:
        hidden = torch.ones(n, dtype=torch.bool)
        for attr in ("input_nodes", "output_nodes"):
            nodes = getattr(wiring, attr, None)
            if nodes is not None:
                hidden[torch.as_tensor(nodes, dtype=torch.long).cpu()] = False
        return hidden
    src, dst = conv.edge_index.cpu()
    has_in = torch.bincount(dst, minlength=n) > 0
    has_out = torch.bincount(src, minlength=n) > 0
    return has_in & has_out


@torch.no_grad()
def wiring_stats(
    model: nn.Module, previous: dict[str, Tensor] | None = None
) -> tuple[dict[str, int], dict[str, Tensor]]:
    """Wiring statistics of ``model`` (definitions in the module docstring).

    Args:
        model (nn.Module): any model; models without a WiringConv give zeros.
        previous (dict, optional): the masks returned by the previous call (``None``: no swaps).

    Returns:
        tuple: ``(stats, masks)`` where ``stats`` has the keys ``selected_edges, swapped_in,
        swapped_out, no_input_nodes, no_output_nodes`` and ``masks`` is :func:`active_masks`.

    Examples:
        >>> from dnwgraph import WiringConv, Wiring
        >>> w = Wiring([(0, 1), (0, 2), (1, 3), (2, 3)], num_nodes=4)
        >>> net = nn.Sequential(WiringConv(w, ratio=4))
        >>> wiring_stats(net)[0]
        {'selected_edges': 4, 'swapped_in': 0, 'swapped_out': 0, 'no_input_nodes': 0, \
'no_output_nodes': 0}
    """
    masks = active_masks(model)
    stats = dict.fromkeys(
        ("selected_edges", "swapped_in", "swapped_out", "no_input_nodes", "no_output_nodes"), 0
    )
    for name, conv in wiring_convs(model).items():
        mask = masks[name]
        src, dst = conv.edge_index.cpu()
        n = conv.num_nodes
        stats["selected_edges"] += int(mask.sum())
        if previous is not None and name in previous:
            stats["swapped_in"] += int((mask & ~previous[name]).sum())
            stats["swapped_out"] += int((~mask & previous[name]).sum())
        hidden = _hidden_nodes(model, conv)
        sel_in = torch.bincount(dst[mask], minlength=n) > 0
        sel_out = torch.bincount(src[mask], minlength=n) > 0
        stats["no_input_nodes"] += int((hidden & ~sel_in).sum())
        stats["no_output_nodes"] += int((hidden & ~sel_out).sum())
    return stats, masks


@torch.no_grad()
def wiring_snapshot(model: nn.Module) -> dict[str, dict[str, Any]]:
    """``{name: {"edge_index", "edge_weight", "active", "num_nodes"}}`` for every wiring, on
    CPU (``torch.save`` it; ``torch.load(weights_only=True)`` reads it back)."""
    return {
        name: {
            "edge_index": conv.edge_index.detach().cpu().clone(),
            "edge_weight": conv.edge_weight.detach().cpu().clone(),
            "active": conv.active_mask().detach().cpu().clone(),
            "num_nodes": int(conv.num_nodes),
        }
        for name, conv in wiring_convs(model).items()
    }


#: the TensorBoard group of the wiring counts (a tag prefix, not the run's snapshot folder)
_WIRING_TAGS = "wiring"


def tensorboard_tag(column: str) -> str:
    """The TensorBoard tag of a ``metrics.csv`` column: ``test_*`` under ``test/``, the
    wiring counts under ``wiring/``, the rest (``train_*``, ``lr``, ``epoch_time_s``) under
    ``train/``; accuracies are logged in % (as the CLI prints them).

    Examples:
        >>> [tensorboard_tag(c) for c in ("train_acc", "test_loss", "lr", "swapped_in")]
        ['train/acc_percent', 'test/loss', 'train/lr', 'wiring/swapped_in']
    """
    if column in ("selected_edges", "swapped_in", "swapped_out") or column.startswith("no_"):
        return f"{_WIRING_TAGS}/{column}"
    group, _, name = column.partition("_")
    if group not in ("train", "test"):
        return f"train/{column}"
    return f"{group}/{name}_percent" if name == "acc" else f"{group}/{name}"


def histogram_tag(layer: str) -> str:
    """The TensorBoard tag of the histogram of :math:`|w|` over the candidate edges of the
    ``WiringConv`` named ``layer`` (``"wiring"`` for a bare layer).

    Examples:
        >>> histogram_tag("executor.conv"), histogram_tag("")
        ('edge_weight_abs/executor.conv', 'edge_weight_abs/wiring')
    """
    return f"edge_weight_abs/{layer or 'wiring'}"


class TensorBoardLogger:
    """Scalars of each epoch to TensorBoard (``DIR/tensorboard``), with the ``tensorboard``
    extra; a no-op when disabled.  Tags by :func:`tensorboard_tag`: ``train/loss``,
    ``train/acc_percent``, ``test/loss``, ``test/acc_percent``, ``train/lr``, ``wiring/...``;
    given the model, a histogram of :math:`|w|` over the candidate edges of each wiring layer
    (:func:`histogram_tag`: ``edge_weight_abs/<layer>``).

    Args:
        log_dir (path): event-file folder.
        enabled (bool): write events (needs the ``tensorboard`` package).

    Raises:
        ImportError: if enabled and ``tensorboard`` is not installed (names the extra).
    """

    def __init__(self, log_dir: PathLikeStr, enabled: bool) -> None:
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise ImportError(
                    "train.tensorboard=true needs tensorboard: pip install 'dnwgraph[tensorboard]'"
                ) from err
            self.writer = SummaryWriter(str(Path(log_dir)))

    def log(self, row: dict[str, Any], model: nn.Module | None = None) -> None:
        """Write the epoch ``row`` (a ``metrics.csv`` row) and, with ``model``, the
        histograms of its wiring layers at step ``row["epoch"]``."""
        if self.writer is None:
            return
        epoch = int(row["epoch"])
        for key in COLUMNS[1:]:
            value = 100.0 * row[key] if key.endswith("_acc") else row[key]
            self.writer.add_scalar(tensorboard_tag(key), value, epoch)
        if model is not None:
            for name, conv in wiring_convs(model).items():
                weight = conv.edge_weight.detach().abs().float().cpu()
                self.writer.add_histogram(histogram_tag(name), weight, epoch)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
