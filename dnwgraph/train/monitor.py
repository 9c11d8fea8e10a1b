r"""Step-by-step instrumentation of DNW training, for any training loop.

:class:`WiringMonitor` watches every :class:`~dnwgraph.WiringConv` of a model.  Call
:meth:`WiringMonitor.record` after ``loss.backward()`` (and before ``optimizer.step()``, so
that the gradients are the ones the step will use); it reads the edge weights, their
straight-through gradients and the inputs that the model's InstanceNorm layers (the node
norms of the neural graphs) saw in the last forward pass, and appends one row:

* ``step``, ``loss`` (what you pass);
* ``selected_edges``, ``swapped_in`` (edges selected now but not at the previous record);
* ``nodes_without_input``: non-input nodes that have candidate incoming edges but no selected
  one.  Under InstanceNorm → GELU such a node outputs zero at first and its outgoing edges
  get no gradient (under ReLU, the candidates into it get none either: it is dead until an
  edge into it is selected again);
* ``output_in_edges``: selected edges into the model's output nodes (when the model has
  ``output_nodes``, as every :class:`~dnwgraph.models.NeuralGraphClassifier` does);
* ``weight_selected`` / ``weight_unselected``: mean :math:`|w|` of the selected and of the
  other candidate edges, ``threshold``: the smallest selected :math:`|w|`;
* ``grad_selected`` / ``grad_unselected``: the L2 norm of the gradient on the selected and on
  the other candidate edges;
* ``input_scale_p10`` / ``_p50`` / ``_p90``: quantiles over nodes of the spread of a node's
  input (the standard deviation over its positions, averaged over the batch) at the
  InstanceNorm layers.  InstanceNorm divides by this spread, so the gradient into the edges of
  a node grows as its input shrinks.

:meth:`WiringMonitor.columns` gives the rows as columns and
:func:`~dnwgraph.analysis.plot_training_dynamics` draws them.

Examples:
    >>> import torch
    >>> from dnwgraph import create_model
    >>> _ = torch.manual_seed(0)
    >>> model = create_model("mnist1d_static")
    >>> monitor = WiringMonitor(model)
    >>> loss = model(torch.randn(8, 40)).logsumexp(1).mean()
    >>> loss.backward()
    >>> row = monitor.record(step=0, loss=loss)
    >>> row["selected_edges"], row["nodes_without_input"]
    (2048.0, 11.0)
    >>> monitor.close()
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dnwgraph.errors import DNWGraphError
from dnwgraph.models import NeuralGraphClassifier
from dnwgraph.train.metrics import wiring_convs

__all__ = ["WiringMonitor", "MONITOR_COLUMNS"]

#: The columns of :meth:`WiringMonitor.columns`, in order.
MONITOR_COLUMNS: tuple[str, ...] = (
    "step",
    "loss",
    "selected_edges",
    "swapped_in",
    "nodes_without_input",
    "output_in_edges",
    "weight_selected",
    "weight_unselected",
    "threshold",
    "grad_selected",
    "grad_unselected",
    "input_scale_p10",
    "input_scale_p50",
    "input_scale_p90",
)

_NORMS = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


class WiringMonitor:
    r"""Records how the wiring of ``model`` and its gradients evolve, one row per call.

    Args:
        model (nn.Module): any model holding :class:`~dnwgraph.WiringConv` modules.

    Raises:
        ValueError: ``model`` holds no WiringConv.

    The forward hooks on the InstanceNorm layers cost one reduction per layer and forward
    pass; :meth:`close` removes them.
    """

    def __init__(self, model: nn.Module) -> None:
        self.convs = wiring_convs(model)
        if not self.convs:
            raise DNWGraphError(f"the model holds no WiringConv to monitor (got {type(model)})")
        self.rows: list[dict[str, float]] = []
        self._previous: dict[str, Tensor] = {}
        self._scales: list[Tensor] = []
        self._roles = _roles(model, self.convs)
        self._hooks = [
            m.register_forward_pre_hook(self._scale_hook)
            for m in model.modules()
            if isinstance(m, _NORMS)
        ]

    def _scale_hook(self, module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        x = inputs[0].detach()
        if x.dim() >= 3:  # [B, n, *S]: spread over the positions, mean over the batch
            self._scales.append(x.float().flatten(2).std(-1).mean(0).cpu())

    @torch.no_grad()
    def record(self, step: int | None = None, loss: Tensor | float | None = None) -> dict:
        """Append and return one row (see the module docstring for the columns).

        Args:
            step (int, optional): the step number (default: the number of rows so far).
            loss (Tensor or float, optional): the loss of the step (``nan`` if not given).
        """
        row: dict[str, float] = dict.fromkeys(MONITOR_COLUMNS, 0.0)
        row["step"] = float(len(self.rows) if step is None else step)
        row["loss"] = float("nan") if loss is None else float(torch.as_tensor(loss).detach())
        w_sel, w_other, g_sel, g_other, thresholds = [], [], [], [], []
        for name, conv in self.convs.items():
            mask = conv.active_mask().detach().cpu()
            w = conv.edge_weight.detach().float().cpu()
            src, dst = conv.edge_index.cpu()
            row["selected_edges"] += int(mask.sum())
            if name in self._previous:
                row["swapped_in"] += int((mask & ~self._previous[name]).sum())
            self._previous[name] = mask.clone()
            inputs, outputs = self._roles[name]
            has_candidate = torch.bincount(dst, minlength=conv.num_nodes) > 0
            has_selected = torch.bincount(dst[mask], minlength=conv.num_nodes) > 0
            row["nodes_without_input"] += int((has_candidate & ~has_selected & ~inputs).sum())
            row["output_in_edges"] += int(outputs[dst[mask]].sum())
            w_sel.append(w[mask].abs())
            w_other.append(w[~mask].abs())
            if mask.any():
                thresholds.append(w[mask].abs().min())
            grad = conv.edge_weight.grad
            if grad is not None:
                grad = grad.detach().float().cpu()
                g_sel.append(grad[mask])
                g_other.append(grad[~mask])
        row["weight_selected"] = _mean(w_sel)
        row["weight_unselected"] = _mean(w_other)
        row["threshold"] = float(min(thresholds)) if thresholds else float("nan")
        row["grad_selected"] = _norm(g_sel)
        row["grad_unselected"] = _norm(g_other)
        if self._scales:
            q = torch.quantile(torch.cat(self._scales), torch.tensor([0.1, 0.5, 0.9]))
            row["input_scale_p10"], row["input_scale_p50"], row["input_scale_p90"] = q.tolist()
        else:
            row["input_scale_p10"] = row["input_scale_p50"] = row["input_scale_p90"] = float("nan")
        self._scales = []
        self.rows.append(row)
        return row

    def columns(self) -> dict[str, list[float]]:
        """The rows as ``{column: values}`` (in :data:`MONITOR_COLUMNS` order)."""
        return {c: [r[c] for r in self.rows] for c in MONITOR_COLUMNS}

    def close(self) -> None:
        """Remove the forward hooks (recorded rows are kept)."""
        for h in self._hooks:
            h.remove()
        self._hooks = []


def _roles(model: nn.Module, convs: dict[str, nn.Module]) -> dict[str, tuple[Tensor, Tensor]]:
    """``{name: (is_input [N], is_output [N])}``: a neural graph's input and output nodes;
    no roles for the wirings of other models (e.g. the stages of MobileNetV1-DNW)."""
    inner = getattr(model, "module", model)  # DistributedDataParallel
    out = {}
    for name, conv in convs.items():
        roles = [torch.zeros(conv.num_nodes, dtype=torch.bool) for _ in range(2)]
        if isinstance(inner, NeuralGraphClassifier) and inner.num_nodes == conv.num_nodes:
            roles[0][inner.input_nodes.cpu()] = True
            roles[1][inner.output_nodes.cpu()] = True
        out[name] = (roles[0], roles[1])
    return out


def _mean(parts: list[Tensor]) -> float:
    t = torch.cat(parts) if parts else torch.zeros(0)
    return float(t.mean()) if t.numel() else float("nan")


def _norm(parts: list[Tensor]) -> float:
    return float(torch.cat(parts).norm()) if parts else float("nan")
