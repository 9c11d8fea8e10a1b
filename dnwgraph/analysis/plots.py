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
from dnwgraph.analysis.metrics import churn_series, random_view
from dnwgraph.analysis.source import load_source
from dnwgraph.errors import DNWGraphError
from dnwgraph.models.views import WiringView, liveness, snapshot_views, wiring_views
from dnwgraph.runs.run import Run, load_snapshots, metrics_columns
from dnwgraph.runs.rundir import check_not_run_file
from dnwgraph.typing import PathLikeStr

if TYPE_CHECKING:
    from matplotlib.axes import Axes

ROLE_COLORS: dict[str, str] = {"input": "tab:green", "hidden": "tab:gray", "output": "tab:purple"}


def _axes(ax: Axes | None, figsize: tuple[float, float] = (6.0, 4.0)) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize)[1]


def _pick(obj: Any, module: str | None) -> WiringView:
    """The view of ``module``; by default the wiring with the most candidate edges."""
    views = wiring_views(obj)
    if module is None:
        return max(views, key=lambda v: v.num_edges)
    for v in views:
        if v.module == module:
            return v
    raise DNWGraphError(f"unknown module {module!r}; choose one of {[v.module for v in views]}")


def node_positions(view: WiringView) -> Tensor:
    """``[N, 2]`` positions: ``networkx.multipartite_layout`` by level (levels left to right),
    a circle when the candidates have a cycle."""
    import networkx as nx

    g = nx.DiGraph()
    if view.level is None:
        g.add_nodes_from(range(view.num_nodes))
        pos = nx.circular_layout(g)
    else:
        g.add_nodes_from((v, {"level": lvl}) for v, lvl in enumerate(view.level.tolist()))
        pos = nx.multipartite_layout(g, subset_key="level")
    return torch.from_numpy(np.array([pos[v] for v in range(view.num_nodes)], dtype=np.float32))


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
    rel = mag / mag.max() if mag.numel() and float(mag.max()) > 0 else torch.ones_like(mag)
    pos_c, neg_c = torch.tensor(to_rgba("tab:red")), torch.tensor(to_rgba("tab:blue"))
    rgba = torch.where((w >= 0).view(-1, 1), pos_c, neg_c)
    rgba[:, 3] = 0.12 + 0.68 * rel
    segments: Any = torch.stack([pos[src], pos[dst]], dim=1).numpy()
    ax.add_collection(
        LineCollection(segments, linewidths=(0.2 + 2.3 * rel).numpy(), colors=rgba.numpy())
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
) -> Axes:
    """Layered diagram of the selected edges: nodes by topological level (left to right), edge
    width and opacity proportional to :math:`|w|`, red for positive and blue for negative
    weights; live nodes coloured by role, dead nodes (no input reaches them or they reach no
    output) hollow.

    Args:
        obj: a Wiring, WiringConv, model or snapshot (see :func:`dnwgraph.to_networkx`).
        ax: Axes to draw into; ``None`` makes a new figure.
        module: which wiring of a model; default the one with the most candidates.
        max_edges: draw at most this many edges, the largest by :math:`|w|`. (default: 3000)
        node_size: marker area; default shrinks with the number of nodes.
        legend: add a legend of node roles.

    Raises:
        ValueError: an unknown ``module`` (lists the choices) or ``max_edges < 1``.

    Examples:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from dnwgraph import Wiring, WiringConv
        >>> ax = plot_wiring(WiringConv(Wiring([(0, 2), (1, 2), (0, 3), (2, 3)]), ratio=3))
        >>> len(ax.collections[0].get_segments())
        3
    """
    if max_edges < 1:
        raise DNWGraphError(f"'max_edges' must be >= 1 (got {max_edges})")
    view = _pick(obj, module)
    ax = _axes(ax)
    drawn = _draw_wiring(ax, view, node_positions(view), max_edges, node_size)
    name = f"'{view.module}' " if view.module else ""
    shown = f", {drawn} largest shown" if drawn < view.num_selected else ""
    ax.set_title(f"wiring {name}({view.num_selected} of {view.num_edges} edges{shown})")
    if legend:
        ax.legend(loc="upper right", fontsize="x-small", markerscale=1.5, framealpha=0.8)
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
    ax.set_title(f"selected weights ({view.num_selected} of {view.num_edges} candidates)")
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
    ax.set_title("degree distribution")
    ax.legend(fontsize="small")
    return ax


def _columns(run: Any) -> dict[str, list[float]]:
    if isinstance(run, Mapping):
        return {k: list(v) for k, v in run.items()}
    return metrics_columns(run)


def plot_training_curves(run: Any, ax: Axes | None = None) -> Axes:
    """Loss (left axis) and accuracy (right axis) per epoch, train and test, from a run's
    ``metrics.csv`` (a run folder, the file, or its columns as a dict).

    Raises:
        FileNotFoundError: no ``metrics.csv``.
        ValueError: a malformed file (see :func:`~dnwgraph.runs.run.metrics_columns`).

    Examples:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> cols = {"epoch": [1, 2], "train_loss": [1.0, 0.5], "test_acc": [0.5, 0.7]}
        >>> [line.get_label() for line in plot_training_curves(cols).lines]
        ['train_loss']
    """
    cols = _columns(run)
    ax = _axes(ax)
    epoch = cols["epoch"]
    for key, style in (("train_loss", "-"), ("test_loss", "--")):
        if key in cols:
            ax.plot(epoch, cols[key], style, color="tab:red", label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss", color="tab:red")
    acc = ax.twinx()
    for key, style in (("train_acc", "-"), ("test_acc", "--")):
        if key in cols:
            acc.plot(epoch, cols[key], style, color="tab:blue", label=key)
    acc.set_ylabel("accuracy", color="tab:blue")
    handles = ax.get_legend_handles_labels()
    more = acc.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize="small", loc="center right")
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
    jac = ax.twinx()
    jac.plot(epoch, [r["jaccard"] for r in rows], "k.-", label="Jaccard with previous")
    jac.plot(epoch, [r["jaccard_final"] for r in rows], "k:", label="Jaccard with final")
    jac.set_ylim(0, 1.05)
    jac.set_ylabel("Jaccard similarity")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = jac.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize="small", loc="center right")
    ax.set_title("edge churn between epochs")
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
    snapshots) and ``wiring.gif`` (one or more snapshots). A checkpoint file may be given
    instead of a folder (then only the model's figures).

    Every file is written atomically, and never into a run's own files or folders
    (``wiring/``, ``tensorboard/``, ``checkpoint.pt``, ...).

    Raises:
        FileNotFoundError: ``run_dir`` does not exist or holds no checkpoint.
        ValueError: a malformed checkpoint, ``metrics.csv`` or snapshot; an ``out_dir`` inside
            a run's own files.

    Examples:
        >>> [p.name for p in plot_run("runs/demo/dnw")]  # doctest: +SKIP
        ['wiring.png', 'adjacency.png', 'degrees.png', 'training_curves.png', 'churn.png',
         'wiring.gif']
    """
    run_dir = Path(run_dir)
    base = run_dir if run_dir.is_dir() else run_dir.parent
    out = Path(out_dir) if out_dir is not None else base / "figures"
    _check_output(out)
    model = load_source(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw, size in (
        ("wiring.png", plot_wiring, (7.0, 4.5)),
        ("adjacency.png", plot_adjacency, (5.5, 4.5)),
        ("degrees.png", plot_degree_histogram, (5.5, 3.5)),
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
