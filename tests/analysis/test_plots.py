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
    plot_wiring,
)


@pytest.fixture
def fake_run(tmp_path_factory):
    return shared_fake_run(tmp_path_factory)


@pytest.fixture
def conv():
    torch.manual_seed(0)
    return WiringConv(random_dag("er", 24, seed=0), ratio=0.5)


def new_ax() -> Axes:
    return Figure().add_subplot()


def test_backend_is_headless():
    assert matplotlib.get_backend().lower() == "agg"


def test_wiring_diagram_widths_follow_weights(conv):
    ax = plot_wiring(conv, new_ax())
    lines = ax.collections[0]
    assert len(lines.get_segments()) == conv.k
    w = conv.edge_weight.detach()[conv.active_mask()].abs()
    widths = torch.tensor(lines.get_linewidths(), dtype=torch.float32)
    # drawn weakest first, width proportional to |w|
    expected = 0.2 + 2.3 * torch.sort(w).values / w.max()
    torch.testing.assert_close(widths, expected)
    assert f"{conv.k} of {conv.num_edges} edges" in ax.get_title()


def test_wiring_diagram_caps_edges_and_checks_arguments(conv):
    ax = plot_wiring(conv, new_ax(), max_edges=5)
    assert len(ax.collections[0].get_segments()) == 5 and "5 largest shown" in ax.get_title()
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
    assert [line.get_label() for line in ax.lines] == ["train_loss", "test_loss"]
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
