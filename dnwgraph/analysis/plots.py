"""Pictures of discovered wirings and of their training (matplotlib, imported lazily).

Every ``plot_*`` function takes ``ax=None`` (a new figure through pyplot) or an Axes to draw
into, returns the Axes, and never calls ``plt.show()``. :func:`plot_run` writes every figure of
a training run as PNG plus a GIF of the wiring over the epochs, without pyplot (it works with no
display).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from dnwgraph._atomic import atomic_path
from dnwgraph._outputs import check_output_file, check_output_folder
from dnwgraph.analysis.metrics import churn_series, random_view
from dnwgraph.analysis.source import is_pretrained_source, load_source
from dnwgraph.errors import DNWGraphError
from dnwgraph.models.views import WiringView, liveness, snapshot_views, wiring_views
from dnwgraph.runs.run import Run, load_snapshots, metrics_columns
from dnwgraph.runs.rundir import check_not_run_file
from dnwgraph.typing import PathLikeStr

if TYPE_CHECKING:
    from matplotlib.axes import Axes

ROLE_COLORS: dict[str, str] = {"input": "tab:green", "hidden": "tab:gray", "output": "tab:purple"}
#: Edge colours for a positive and a negative weight.
EDGE_COLORS: tuple[str, str] = ("tab:red", "tab:blue")


def _axes(ax: Axes | None, figsize: tuple[float, float] = (6.0, 4.0)) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize)[1]


def _outside_legend(ax: Axes, handles: list[Any], labels: list[str], **kwargs: Any) -> None:
    """A legend to the right of the axes, clear of the data (and of a twin y axis)."""
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
              fontsize="small", **kwargs)  # fmt: skip


def _legend_below(ax: Axes, handles: list[Any], labels: list[str]) -> None:
    """A legend in one row under the x label (a plot with a twin y axis on the right)."""
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.2), borderaxespad=0.0,
              ncol=min(len(labels), 2), fontsize="small", frameon=False)  # fmt: skip


def _integer_ticks(axis: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _name(obj: Any, view: WiringView) -> str:
    """What the title calls the drawing: the registered model's name (``model_spec``), else
    its class; the wiring's module only when the model has several wirings."""
    spec = getattr(obj, "model_spec", None)
    if isinstance(spec, Mapping) and spec.get("name"):
        name = str(spec["name"])
    elif isinstance(obj, torch.nn.Module):
        name = type(obj).__name__
    else:
        name = "wiring"
    if view.module and len(wiring_views(obj)) > 1:
        name += f" ({view.module})"
    return name


def _pick(obj: Any, module: str | None) -> WiringView:
    """The view of ``module``; by default the wiring with the most candidate edges."""
    views = wiring_views(obj)
    if module is None:
        return max(views, key=lambda v: v.num_edges)
    for v in views:
        if v.module == module:
            return v
    raise DNWGraphError(f"unknown module {module!r}; choose one of {[v.module for v in views]}")


def node_positions(view: WiringView, sweeps: int = 4) -> Tensor:
    """``[N, 2]`` positions: ``networkx.multipartite_layout`` by level (levels left to right),
    a circle when the candidates have a cycle.

    Inside a level the nodes are ordered to shorten the selected edges (the barycentre
    heuristic of layered drawing): ``sweeps`` passes alternately sort each level by the mean
    height of its selected predecessors and of its selected successors; a node with none keeps
    its height.  The heights a level uses are those of ``multipartite_layout``.
    """
    import networkx as nx

    g = nx.DiGraph()
    if view.level is None:
        g.add_nodes_from(range(view.num_nodes))
        pos = nx.circular_layout(g)
        return torch.from_numpy(np.array([pos[v] for v in range(view.num_nodes)], np.float32))
    g.add_nodes_from((v, {"level": lvl}) for v, lvl in enumerate(view.level.tolist()))
    pos = nx.multipartite_layout(g, subset_key="level")
    xy = torch.from_numpy(np.array([pos[v] for v in range(view.num_nodes)], dtype=np.float32))
    (src, dst), _ = view.selected()
    levels = [(view.level == lvl).nonzero().view(-1) for lvl in view.level.unique()]
    count = [
        torch.zeros(view.num_nodes).index_add_(0, i, torch.ones(i.numel())) for i in (dst, src)
    ]
    for sweep in range(sweeps):
        a, b = (src, dst) if sweep % 2 == 0 else (dst, src)
        for nodes in levels if sweep % 2 == 0 else levels[::-1]:
            total = torch.zeros(view.num_nodes).index_add_(0, b, xy[a, 1])
            n = count[sweep % 2]
            target = torch.where(n > 0, total / n.clamp(min=1), xy[:, 1])[nodes]
            heights = xy[nodes, 1].sort().values
            xy[nodes[torch.argsort(target, stable=True)], 1] = heights
    return xy


def _draw_wiring(
    ax: Axes, view: WiringView, pos: Tensor, max_edges: int, node_size: float | None
) -> int:
    """Draw edges (width and opacity by |w|, colour by sign, strongest on top) and nodes
    (colour by role, dead nodes hollow); returns the number of edges drawn."""
    from matplotlib.collections import LineCollection
    from matplotlib.colors import to_rgba

    (src, dst), w = view.selected()
    if w.numel() > max_edges:
        keep = torch.topk(w.abs(), max_edges).indices
        src, dst, w = src[keep], dst[keep], w[keep]
    order = torch.argsort(w.abs(), stable=True)  # weakest first: strong edges drawn on top
    src, dst, w = src[order], dst[order], w[order]
    mag = w.abs()
    # width and opacity grow from the weakest drawn |w| (0) to the strongest (1); opacity
    # quadratically, and fainter in a crowded drawing, so that the strong edges stand out
    span = float(mag.max() - mag.min()) if mag.numel() else 0.0
    rel = (mag - mag.min()) / span if span > 0 else torch.ones_like(mag)
    pos_c, neg_c = torch.tensor(to_rgba(EDGE_COLORS[0])), torch.tensor(to_rgba(EDGE_COLORS[1]))
    rgba = torch.where((w >= 0).view(-1, 1), pos_c, neg_c)
    crowd = min(1.0, max(0.3, (200.0 / max(w.numel(), 1)) ** 0.5))
    rgba[:, 3] = crowd * (0.04 + 0.86 * rel**2)
    segments: Any = torch.stack([pos[src], pos[dst]], dim=1).numpy()
    ax.add_collection(
        LineCollection(segments, linewidths=(0.3 + 2.2 * rel).numpy(), colors=rgba.numpy())
    )
    receives, reaches = liveness(view)
    live = (receives & reaches).tolist()
    roles = view.role()
    size = node_size if node_size is not None else max(4.0, 600.0 / max(view.num_nodes, 1) ** 0.7)
    for role, color in ROLE_COLORS.items():
        idx = [v for v in range(view.num_nodes) if roles[v] == role and live[v]]
        if idx:
            p = pos[idx].numpy()
            ax.scatter(p[:, 0], p[:, 1], s=size, c=color, label=role, zorder=2, linewidths=0)
    dead = [v for v in range(view.num_nodes) if not live[v]]
    if dead:
        p = pos[dead].numpy()
        ax.scatter(p[:, 0], p[:, 1], s=size, facecolors="white", edgecolors="0.6",
                   linewidths=0.6, label="dead", zorder=2)  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])
    ax.margins(0.04)
    ax.autoscale_view()
    return int(src.numel())


def plot_wiring(
    obj: Any,
    ax: Axes | None = None,
    *,
    module: str | None = None,
    max_edges: int = 3000,
    node_size: float | None = None,
    legend: bool = True,
    title: str | None = None,
) -> Axes:
    """Layered diagram of the selected edges: nodes by topological level (left to right,
    ordered inside a level to shorten the edges, see :func:`node_positions`), edge width and
    opacity growing with :math:`|w|`, red for positive and blue for negative weights; live
    nodes coloured by role, dead nodes (no input reaches them or they reach no output) hollow.

    Args:
        obj: a Wiring, WiringConv, model or snapshot (see :func:`dnwgraph.to_networkx`).
        ax: Axes to draw into; ``None`` makes a new figure.
        module: which wiring of a model; default the one with the most candidates.
        max_edges: draw at most this many edges, the largest by :math:`|w|`. (default: 3000)
        node_size: marker area; default shrinks with the number of nodes.
        legend: a legend of node roles and edge signs, right of the axes.
        title: the title; default the model's registered name (``model.model_spec``) and the
            edge counts, e.g. ``"mnist1d_static: 2,048 of 41,984 edges selected"``.

    Raises:
        ValueError: an unknown ``module`` (lists the choices) or ``max_edges < 1``.

    Examples:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from dnwgraph import Wiring, WiringConv
        >>> ax = plot_wiring(WiringConv(Wiring([(0, 2), (1, 2), (0, 3), (2, 3)]), ratio=3))
        >>> len(ax.collections[0].get_segments()), ax.get_title()
        (3, 'WiringConv: 3 of 4 edges selected')
    """
    from matplotlib.lines import Line2D

    if max_edges < 1:
        raise DNWGraphError(f"'max_edges' must be >= 1 (got {max_edges})")
    view = _pick(obj, module)
    ax = _axes(ax)
    drawn = _draw_wiring(ax, view, node_positions(view), max_edges, node_size)
    shown = f", the {drawn:,} largest shown" if drawn < view.num_selected else ""
    counts = f"{view.num_selected:,} of {view.num_edges:,} edges selected{shown}"
    ax.set_title(title if title is not None else f"{_name(obj, view)}: {counts}")
    if legend:
        handles, labels = ax.get_legend_handles_labels()
        for color, label in zip(EDGE_COLORS, ("w > 0", "w < 0"), strict=True):
            handles.append(Line2D([], [], color=color, linewidth=2.0))
            labels.append(label)
        _outside_legend(ax, handles, labels, title="width, opacity ~ |w|",
                        title_fontsize="small", markerscale=1.5)  # fmt: skip
    return ax


def plot_adjacency(obj: Any, ax: Axes | None = None, *, module: str | None = None) -> Axes:
    r"""Heatmap of the selected weights: row :math:`v` (target), column :math:`u` (source) holds
    :math:`w_{uv}`; unselected pairs are blank. A block DAG shows its blocks below the
    diagonal.

    Raises:
        ValueError: an unknown ``module`` (lists the choices).

    Examples:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from dnwgraph import Wiring
        >>> plot_adjacency(Wiring([(0, 1), (1, 2)])).images[0].get_array().shape
        (3, 3)
    """
    view = _pick(obj, module)
    ax = _axes(ax, (5.0, 4.5))
    (src, dst), w = view.selected()
    n = view.num_nodes
    mat = torch.full((n, n), float("nan"))
    mat[dst, src] = w
    vmax = float(w.abs().max()) if w.numel() else 1.0
    im = ax.imshow(mat.numpy(), cmap="coolwarm", vmin=-vmax, vmax=vmax, interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="w")
    ax.set_xlabel("source node u")
    ax.set_ylabel("target node v")
    counts = f"{view.num_selected:,} of {view.num_edges:,} candidates"
    ax.set_title(f"{_name(obj, view)}: selected weights ({counts})")
    return ax


def plot_degree_histogram(
    obj: Any, ax: Axes | None = None, *, module: str | None = None, random: bool = True
) -> Axes:
    """Histograms of selected in- and out-degrees; with ``random``, the in-degree of a random
    wiring with the same number of edges from the same candidates (dashed), for comparison.

    Raises:
        ValueError: an unknown ``module`` (lists the choices).

    Examples:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from dnwgraph import Wiring
        >>> len(plot_degree_histogram(Wiring([(0, 1), (1, 2)]), random=False).lines)
        2
    """
    view = _pick(obj, module)
    ax = _axes(ax)
    series = [("in-degree", view, "tab:orange", "-"), ("out-degree", view, "tab:cyan", "-")]
    if random:
        series.append(("in-degree, random wiring", random_view(view), "black", "--"))
    for label, v, color, style in series:
        (src, dst), _ = v.selected()
        deg = torch.bincount(dst if label.startswith("in") else src, minlength=v.num_nodes)
        counts = torch.bincount(deg)
        x = torch.arange(counts.numel())
        ax.step(x.numpy(), counts.numpy(), where="mid", color=color, linestyle=style, label=label)
    ax.set_xlabel("degree (selected edges)")
    ax.set_ylabel("nodes")
    _integer_ticks(ax.xaxis)
    ax.set_title(f"{_name(obj, view)}: degree distribution")
    _outside_legend(ax, *ax.get_legend_handles_labels())
    return ax


def _columns(run: Any) -> dict[str, list[float]]:
    if isinstance(run, Mapping):
        return {k: list(v) for k, v in run.items()}
    return metrics_columns(run)


def plot_training_curves(run: Any, ax: Axes | None = None) -> Axes:
    """Loss (left axis) and accuracy in % (right axis, as the CLI prints it) per epoch, train
    and test, from a run's ``metrics.csv`` (a run folder, the file, or its columns as a dict;
    accuracy there is a fraction).  Epochs are integer ticks; the legend sits under the axes.

    Raises:
        FileNotFoundError: no ``metrics.csv``.
        ValueError: a malformed file (see :func:`~dnwgraph.runs.run.metrics_columns`).

    Examples:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> cols = {"epoch": [1, 2], "train_loss": [1.0, 0.5], "test_acc": [0.5, 0.7]}
        >>> ax = plot_training_curves(cols)
        >>> [line.get_label() for line in ax.lines], ax.figure.axes[1].lines[0].get_ydata().tolist()
        (['train loss'], [50.0, 70.0])
    """
    cols = _columns(run)
    ax = _axes(ax)
    epoch = cols["epoch"]
    for key, style in (("train_loss", "-"), ("test_loss", "--")):
        if key in cols:
            ax.plot(epoch, cols[key], style, color="tab:red", label=key.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss", color="tab:red")
    _integer_ticks(ax.xaxis)
    acc = ax.twinx()
    for key, style in (("train_acc", "-"), ("test_acc", "--")):
        if key in cols:
            percent = [100.0 * a for a in cols[key]]
            acc.plot(epoch, percent, style, color="tab:blue", label=key.replace("_acc", " acc."))
    acc.set_ylabel("accuracy (%)", color="tab:blue")
    handles = ax.get_legend_handles_labels()
    more = acc.get_legend_handles_labels()
    _legend_below(ax, handles[0] + more[0], handles[1] + more[1])
    ax.set_title("training curves")
    return ax


def _snapshots(source: Any) -> list[tuple[int, Any]]:
    if isinstance(source, (str, Path)):
        return load_snapshots(source)
    return list(source)


def plot_churn(snapshots: Any, ax: Axes | None = None) -> Axes:
    """Edges swapped in (up) and out (down) between consecutive snapshots, and the Jaccard
    similarity of the selected edges with the previous and with the final snapshot (right axis).

    Args:
        snapshots: a run folder or a list of ``(epoch, snapshot)`` (see
            :func:`~dnwgraph.runs.run.load_snapshots`).

    Raises:
        ValueError: fewer than two snapshots.

    Examples:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from dnwgraph import Wiring
        >>> snaps = [(0, Wiring([(0, 1), (1, 2)])), (1, Wiring([(0, 1), (0, 2)]))]
        >>> len(plot_churn(snaps).patches)
        2
    """
    snaps = _snapshots(snapshots)
    if len(snaps) < 2:
        raise DNWGraphError(f"edge churn needs at least two snapshots (got {len(snaps)})")
    rows = churn_series(snaps)
    ax = _axes(ax)
    epoch = [r["epoch"] for r in rows]
    ax.bar(epoch, [r["swapped_in"] for r in rows], color="tab:green", label="swapped in")
    ax.bar(epoch, [-r["swapped_out"] for r in rows], color="tab:red", label="swapped out")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel("edges")
    _integer_ticks(ax.xaxis)
    jac = ax.twinx()
    jac.plot(epoch, [r["jaccard"] for r in rows], "k.-", label="Jaccard with previous")
    jac.plot(epoch, [r["jaccard_final"] for r in rows], "k:", label="Jaccard with final")
    jac.set_ylim(0, 1.05)
    jac.set_ylabel("Jaccard similarity")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = jac.get_legend_handles_labels()
    _legend_below(ax, h1 + h2, l1 + l2)
    ax.set_title("edge churn between epochs")
    return ax


def plot_weight_histograms(
    snapshots: Any,
    ax: Axes | None = None,
    *,
    reference: Any = None,
    module: str | None = None,
    bins: int = 40,
) -> Axes:
    """The distribution of :math:`|w|` over the candidate edges at every snapshot: one column
    per epoch, colour = number of edges in the bin (log scale), and the selection threshold
    (the smallest selected :math:`|w|`) as a line.

    Args:
        snapshots: a run folder or a list of ``(epoch, snapshot)``.
        ax: Axes to draw into; ``None`` makes a new figure.
        reference: the model (or its views) giving node roles and levels, and the title's
            name; default: inferred from the candidates.
        module: which wiring of a model; default the one with the most candidates.
        bins: number of :math:`|w|` bins, from 0 to the largest :math:`|w|` of all snapshots.

    Raises:
        ValueError: no snapshot, ``bins < 1``, a wiring without weights or an unknown
            ``module``.

    Examples:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from dnwgraph import Wiring, WiringConv
        >>> conv = WiringConv(Wiring([(0, 2), (1, 2), (0, 3), (2, 3)]), ratio=2)
        >>> ax = plot_weight_histograms([(0, conv), (1, conv)], bins=4)
        >>> ax.collections[0].get_array().shape
        (4, 2)
    """
    from matplotlib.colors import LogNorm

    if bins < 1:
        raise DNWGraphError(f"'bins' must be >= 1 (got {bins})")
    snaps = _snapshots(snapshots)
    if not snaps:
        raise DNWGraphError("no snapshot to draw")
    ref = None if reference is None else wiring_views(reference)
    views = [(e, _pick(_frame_views(s, ref), module)) for e, s in snaps]
    if any(v.weight is None for _, v in views):
        raise DNWGraphError("weight histograms need edge weights (got a wiring without them)")
    mags = [v.weight.abs() for _, v in views]  # type: ignore[union-attr]
    top = max(float(m.max()) for m in mags if m.numel()) if any(m.numel() for m in mags) else 1.0
    edges = torch.linspace(0.0, top or 1.0, bins + 1)
    counts = torch.stack([torch.histc(m, bins, 0.0, float(edges[-1])) for m in mags], dim=1)
    epochs = torch.tensor([float(e) for e, _ in views])
    gaps = epochs.diff() if len(views) > 1 else torch.ones(1)
    x = torch.cat([epochs[:1] - gaps[:1] / 2, epochs[:-1] + gaps / 2, epochs[-1:] + gaps[-1:] / 2])
    ax = _axes(ax)
    data = np.ma.masked_equal(counts.numpy(), 0.0)
    mesh = ax.pcolormesh(x.numpy(), edges.numpy(), data, cmap="viridis", norm=LogNorm())
    ax.figure.colorbar(mesh, ax=ax, label="candidate edges")
    thresholds = [float(v.selected()[1].abs().min()) if v.num_selected else 0.0 for _, v in views]
    ax.plot(epochs.numpy(), thresholds, "o-", color="tab:red", markersize=3,
            label="selection threshold (smallest selected |w|)")  # fmt: skip
    ax.set_xlabel("epoch")
    ax.set_ylabel("|w|")
    _integer_ticks(ax.xaxis)
    name = _name(reference, views[-1][1]) if reference is not None else "wiring"
    ax.set_title(f"{name}: |w| of the {views[-1][1].num_edges:,} candidate edges")
    _legend_below(ax, *ax.get_legend_handles_labels())
    return ax


def animate_wiring(
    snapshots: Any,
    path: PathLikeStr,
    *,
    reference: Any = None,
    module: str | None = None,
    fps: int = 2,
    max_frames: int = 40,
    max_edges: int = 1500,
    dpi: int = 72,
) -> Path:
    """A GIF of the selected wiring over training (matplotlib's ``PillowWriter``), one frame
    per snapshot, the layout fixed by the candidate wiring's levels.

    Args:
        snapshots: a run folder or a list of ``(epoch, snapshot)``.
        path: the ``.gif`` to write.
        reference: the model (or its views) giving node roles and levels; default: inferred
            from the candidates.
        module: which wiring of a model; default the one with the most candidates.
        fps: frames per second.
        max_frames: snapshots are subsampled evenly (first and last kept) above this.
        max_edges: edges drawn per frame, the largest by :math:`|w|`.
        dpi: resolution (the GIF stays small).

    Returns:
        Path: ``path``.

    Raises:
        ValueError: no snapshot, ``fps <= 0`` or ``max_frames < 1``, or an unknown ``module``.

    Examples:
        >>> import tempfile, pathlib
        >>> from dnwgraph import Wiring
        >>> snaps = [(0, Wiring([(0, 1), (1, 2)])), (1, Wiring([(0, 1), (0, 2)]))]
        >>> gif = animate_wiring(snaps, pathlib.Path(tempfile.mkdtemp()) / "w.gif")
        >>> gif.stat().st_size > 0
        True
    """
    from matplotlib.animation import PillowWriter
    from matplotlib.figure import Figure

    if fps <= 0 or max_frames < 1:
        raise DNWGraphError(f"'fps' must be > 0 and 'max_frames' >= 1 (got {fps}, {max_frames})")
    snaps = _snapshots(snapshots)
    if not snaps:
        raise DNWGraphError("no snapshot to animate")
    if len(snaps) > max_frames:
        idx = torch.linspace(0, len(snaps) - 1, max_frames).round().long().unique().tolist()
        snaps = [snaps[i] for i in idx]
    ref = None if reference is None else wiring_views(reference)
    views = [(e, _pick(_frame_views(s, ref), module)) for e, s in snaps]
    pos = node_positions(views[-1][1])
    path = Path(path)
    _check_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(5.0, 3.6))
    ax = fig.add_subplot()
    writer = PillowWriter(fps=fps)
    with atomic_path(path) as tmp, writer.saving(fig, str(tmp), dpi):
        for epoch, view in views:
            ax.clear()
            _draw_wiring(ax, view, pos, max_edges, None)
            ax.set_title(f"epoch {epoch}: {view.num_selected} of {view.num_edges} edges")
            writer.grab_frame()
    return path


def _check_output(path: Path) -> None:
    check_output_file(path, "figure")
    check_not_run_file(path)


def _frame_views(snapshot: Any, reference: list[WiringView] | None) -> list[WiringView]:
    if isinstance(snapshot, Mapping):
        return snapshot_views(snapshot, reference)
    return wiring_views(snapshot)


def plot_run(run_dir: PathLikeStr, out_dir: PathLikeStr | None = None) -> list[Path]:
    """Write every figure of a training run; returns the files written.

    Reads the run through its files (``checkpoint.pt`` via :func:`dnwgraph.load_model`,
    ``metrics.csv``, ``wiring/epoch_*.pt``) and writes to ``out_dir`` (default
    ``run_dir/figures``): ``wiring.png``, ``adjacency.png``, ``degrees.png`` (from the final
    model), ``training_curves.png`` (if ``metrics.csv`` exists), ``churn.png`` (two or more
    snapshots), ``weights.png`` (the :math:`|w|` histograms, one or more snapshots) and
    ``wiring.gif`` (one or more snapshots). A checkpoint file or a pretrained-model folder may
    be given instead of a run (then only the model's figures; a pretrained-model folder's go
    to ``<folder>_figures`` beside it by default, never into it).

    Every file is written atomically, and never into a run's own files or folders
    (``wiring/``, ``tensorboard/``, ``checkpoint.pt``, ...).

    Raises:
        FileNotFoundError: ``run_dir`` does not exist or holds no checkpoint.
        ValueError: a malformed checkpoint, ``metrics.csv`` or snapshot; an ``out_dir`` inside
            a run's own files, that is a file, or lies below a file.

    Examples:
        >>> [p.name for p in plot_run("runs/demo/dnw")]  # doctest: +SKIP
        ['wiring.png', 'adjacency.png', 'degrees.png', 'training_curves.png', 'churn.png',
         'weights.png', 'wiring.gif']
    """
    run_dir = Path(run_dir)
    if is_pretrained_source(run_dir):  # beside the folder: save_pretrained owns it
        default = run_dir.with_name(f"{run_dir.name}_figures")
    else:
        default = (run_dir if run_dir.is_dir() else run_dir.parent) / "figures"
    out = check_output_folder(out_dir if out_dir is not None else default, "figures")
    check_not_run_file(out)
    model = load_source(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw, size in (
        ("wiring.png", plot_wiring, (9.0, 5.5)),
        ("adjacency.png", plot_adjacency, (5.5, 4.5)),
        ("degrees.png", plot_degree_histogram, (6.5, 3.5)),
    ):
        written.append(save_figure(lambda ax, d=draw: d(model, ax), out / name, size))
    run = Run(run_dir)
    if run_dir.is_dir() and run.metrics_path.is_file():
        written.append(
            save_figure(lambda ax: plot_training_curves(run_dir, ax), out / "training_curves.png")
        )
    snaps = _snapshots(run_dir) if run_dir.is_dir() and run.wiring_dir.is_dir() else []
    if len(snaps) >= 2:
        written.append(save_figure(lambda ax: plot_churn(snaps, ax), out / "churn.png"))
    if snaps:
        written.append(
            save_figure(
                lambda ax: plot_weight_histograms(snaps, ax, reference=model), out / "weights.png"
            )
        )
        written.append(animate_wiring(snaps, out / "wiring.gif", reference=model))
    return written


def save_figure(
    draw: Any, path: Path, figsize: tuple[float, float] = (6.0, 4.0), dpi: int = 100
) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    draw(fig.add_subplot())
    _check_output(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    return path
