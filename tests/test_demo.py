"""The demo on a small MNIST-1D: both runs, GraphML, figures, table; a second run replaces."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from dnwgraph.demo import run_demo


def test_demo_writes_runs_graphml_and_figures_and_reruns(tmp_path: Path, capsys) -> None:
    pytest.importorskip("matplotlib")
    rows = run_demo(tmp_path / "demo", epochs=1, progress=False, num_samples=200)
    assert set(rows) == {"dnw", "random"}
    assert rows["dnw"]["edges"] == rows["random"]["edges"] == 2048
    assert rows["dnw"]["params"] == rows["random"]["params"]
    for graph in ("dnw", "random"):
        run = tmp_path / "demo" / graph
        assert (run / "checkpoint.pt").is_file() and (run / "metrics.csv").is_file()
        assert (run / "figures" / "training_curves.png").is_file()
    g = nx.read_graphml(tmp_path / "demo" / "wiring.graphml")
    assert g.number_of_edges() == 2048
    out = capsys.readouterr().out
    assert "| DNW (discovered wiring) |" in out and "DNW minus random graph" in out
    assert (tmp_path / "demo" / "summary.md").read_text().startswith("MNIST-1D")
    run_demo(tmp_path / "demo", epochs=1, progress=False, num_samples=200)  # by design: replaces
    mine = tmp_path / "demo" / "random" / "wiring.graphml"  # a user's export into a run
    mine.write_text("mine")
    with pytest.raises(ValueError, match=r"wiring\.graphml"):
        run_demo(tmp_path / "demo", epochs=1, progress=False, num_samples=200)
    assert mine.read_text() == "mine"
    with pytest.raises(ValueError, match="'epochs' must be a positive int"):
        run_demo(tmp_path / "demo", epochs=0)
