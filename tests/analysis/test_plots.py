from __future__ import annotations

import matplotlib
import pytest
import torch
from _analysis_helpers import shared_fake_run
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image

from dnwgraph import Wiring, WiringConv, random_dag
from dnwgraph.analysis import (
    animate_wiring,
    load_snapshots,
    plot_adjacency,
    plot_churn,
    plot_degree_histogram,
    plot_run,
    plot_training_curves,
    plot_weight_histograms,
    plot_wiring,
)
from dnwgraph.analysis.plots import node_positions
from dnwgraph.models.views import snapshot_views, wiring_views


@pytest.fixture
def fake_run(tmp_path_factory):
    return shared_fake_run(tmp_path_factory)


@pytest.fixture
def conv():
    torch.manual_seed(0)
    return WiringConv(random_dag("er", 24, seed=0), ratio=0.5)


def new_ax() -> Axes:
    return Figure().add_subplot()


def drawn(ax: Axes) -> Axes:
    """Draw the figure (Agg canvas) so that the extents are final."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(ax.figure).draw()
    return ax


def assert_legend_outside(ax: Axes) -> None:
    legend = ax.get_legend()
    assert legend is not None
    box, frame = legend.get_window_extent(), ax.get_window_extent()
    assert not box.overlaps(frame), (box, frame)


def assert_integer_ticks(axis) -> None:
    ticks = [t for t in axis.get_ticklocs() if axis.get_view_interval()[0] <= t]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_backend_is_headless():
    assert matplotlib.get_backend().lower() == "agg"


def test_wiring_diagram_widths_follow_weights(conv):
    ax = plot_wiring(conv, new_ax())
    lines = ax.collections[0]
    assert len(lines.get_segments()) == conv.k
    w = conv.edge_weight.detach()[conv.active_mask()].abs()
    widths = torch.tensor(lines.get_linewidths(), dtype=torch.float32)
    # drawn weakest first, width growing linearly from the weakest drawn |w| to the strongest
    w = torch.sort(w).values
    expected = 0.3 + 2.2 * (w - w[0]) / (w[-1] - w[0])
    torch.testing.assert_close(widths, expected)
    alpha = torch.tensor(lines.get_colors()[:, 3], dtype=torch.float32)
    assert bool((alpha.diff() >= 0).all()) and float(alpha[-1]) > 4 * float(alpha[0])
    assert ax.get_title() == f"WiringConv: {conv.k} of {conv.num_edges} edges selected"


def test_wiring_diagram_caps_edges_and_checks_arguments(conv):
    ax = plot_wiring(conv, new_ax(), max_edges=5)
    assert len(ax.collections[0].get_segments()) == 5 and "the 5 largest shown" in ax.get_title()
    with pytest.raises(ValueError, match="'max_edges' must be >= 1"):
        plot_wiring(conv, new_ax(), max_edges=0)
    with pytest.raises(ValueError, match="unknown module 'x'; choose one of"):
        plot_wiring(conv, new_ax(), module="x")


def test_cyclic_wiring_is_drawn_on_a_circle():
    conv = WiringConv(Wiring([(0, 1), (1, 2), (2, 0)], acyclic=False), ratio=3)
    assert len(plot_wiring(conv, new_ax()).collections[0].get_segments()) == 3


def test_ax_none_returns_a_new_axes(conv):
    import matplotlib.pyplot as plt

    ax = plot_adjacency(conv)
    assert isinstance(ax, Axes)
    plt.close(ax.figure)


def test_adjacency_holds_the_selected_weights(conv):
    mat = plot_adjacency(conv, new_ax()).images[0].get_array()
    src, dst = conv.edge_index[:, conv.active_mask()]
    w = conv.edge_weight.detach()[conv.active_mask()]
    assert mat.shape == (24, 24) and int((~mat.mask).sum()) == conv.k
    assert mat[dst[0], src[0]] == pytest.approx(float(w[0]))


def test_degree_histogram_counts_nodes(conv):
    ax = plot_degree_histogram(conv, new_ax())
    assert len(ax.lines) == 3
    for line in ax.lines:
        assert sum(line.get_ydata()) == conv.num_nodes


def test_training_curves_and_churn_from_a_run(fake_run):
    run, _ = fake_run
    ax = plot_training_curves(run, new_ax())
    assert [line.get_label() for line in ax.lines] == ["train loss", "test loss"]
    ax = plot_churn(run, new_ax())
    assert len(ax.patches) == 2 * 3  # swapped in and out for epochs 1..3
    with pytest.raises(ValueError, match="at least two snapshots"):
        plot_churn(load_snapshots(run)[:1], new_ax())


def test_animation_has_one_frame_per_snapshot(fake_run, tmp_path):
    run, model = fake_run
    gif = animate_wiring(run, tmp_path / "w.gif", reference=model, max_edges=200)
    with Image.open(gif) as im:
        assert im.n_frames == 4
    gif = animate_wiring(run, tmp_path / "w2.gif", max_frames=2, max_edges=50)
    with Image.open(gif) as im:
        assert im.n_frames == 2
    with pytest.raises(ValueError, match="'fps' must be > 0"):
        animate_wiring(run, tmp_path / "w3.gif", fps=0)


def test_plot_run_writes_every_figure(fake_run, tmp_path):
    run, _ = fake_run
    files = plot_run(run, tmp_path / "figs")
    names = sorted(p.name for p in files)
    assert names == sorted(
        [
            "wiring.png",
            "adjacency.png",
            "degrees.png",
            "training_curves.png",
            "churn.png",
            "weights.png",
            "wiring.gif",
        ]
    )
    for p in files:
        assert p.stat().st_size > 1000
        with Image.open(p) as im:
            assert im.size[0] > 100


def test_plot_run_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such run"):
        plot_run(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="without checkpoint.pt"):
        plot_run(tmp_path)


def test_wiring_of_a_model_is_titled_by_its_name_with_signs_in_an_outside_legend(fake_run):
    _, model = fake_run
    ax = drawn(plot_wiring(model, Figure(layout="constrained", figsize=(9, 5.5)).add_subplot()))
    view = wiring_views(model)[0]
    counts = f"{view.num_selected:,} of {view.num_edges:,} edges selected"
    assert ax.get_title() == f"mnist1d_static: {counts}"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["input", "hidden", "output", "dead", "w > 0", "w < 0"][-len(labels) :]
    assert {"w > 0", "w < 0"} <= set(labels)
    assert_legend_outside(ax)
    assert plot_wiring(model, new_ax(), title="DNW").get_title() == "DNW"


def test_levels_are_ordered_to_shorten_the_selected_edges():
    """A chain 0 -> 3 -> 5 and 1 -> 2 -> 4 over levels {0, 1}, {2, 3}, {4, 5}: the ordering
    puts each chain at one height, so no selected edge changes height."""
    conv = WiringConv(Wiring([(0, 3), (3, 5), (1, 2), (2, 4)], input_nodes=[0, 1]), ratio=4)
    (view,) = wiring_views(conv)
    pos = node_positions(view)
    (src, dst), _ = view.selected()
    torch.testing.assert_close(pos[src, 1], pos[dst, 1])
    unordered = node_positions(view, sweeps=0)
    assert float((unordered[src, 1] - unordered[dst, 1]).abs().sum()) > 0


def test_training_curves_integer_epochs_percent_accuracy_outside_legend(fake_run):
    run, _ = fake_run
    ax = drawn(
        plot_training_curves(run, Figure(layout="constrained", figsize=(6, 4)).add_subplot())
    )
    assert_integer_ticks(ax.xaxis)
    acc = ax.figure.axes[1]
    assert acc.get_ylabel() == "accuracy (%)"
    test_acc = [line for line in acc.lines if line.get_label() == "test acc."][0]
    assert test_acc.get_ydata().tolist() == pytest.approx([18.0, 36.0, 54.0])  # 0.18 * epoch
    assert_legend_outside(ax)
    assert not acc.get_legend()


def test_churn_and_degrees_have_integer_ticks_and_outside_legends(fake_run, conv):
    run, _ = fake_run
    ax = drawn(plot_churn(run, Figure(layout="constrained", figsize=(6, 4)).add_subplot()))
    assert_integer_ticks(ax.xaxis)
    assert_legend_outside(ax)
    ax = drawn(
        plot_degree_histogram(conv, Figure(layout="constrained", figsize=(6.5, 3.5)).add_subplot())
    )
    assert_integer_ticks(ax.xaxis)
    assert_legend_outside(ax)


def test_weight_histograms_count_every_candidate_per_epoch(fake_run):
    run, model = fake_run
    snaps = load_snapshots(run)
    ax = drawn(
        plot_weight_histograms(
            run, Figure(layout="constrained").add_subplot(), reference=model, bins=10
        )
    )
    counts = ax.collections[0].get_array()
    assert counts.shape == (10, len(snaps))
    views = [snapshot_views(s, wiring_views(model))[0] for _, s in snaps]
    top = max(float(v.weight.abs().max()) for v in views)
    for t, view in enumerate(views):
        expected = torch.histc(view.weight.abs(), 10, 0.0, top)
        assert counts[:, t].filled(0).tolist() == expected.tolist()
    threshold = ax.lines[0].get_ydata().tolist()
    assert threshold == pytest.approx(
        [float(v.weight[v.active].abs().min()) for v in views], rel=1e-6
    )
    assert_integer_ticks(ax.xaxis)
    assert_legend_outside(ax)
    assert ax.get_title().startswith("mnist1d_static: |w| of the")
    with pytest.raises(ValueError, match="'bins' must be >= 1"):
        plot_weight_histograms(run, new_ax(), bins=0)
    with pytest.raises(ValueError, match="no snapshot"):
        plot_weight_histograms([], new_ax())
