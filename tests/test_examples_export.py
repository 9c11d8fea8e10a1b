from __future__ import annotations

import runpy
import sys
from pathlib import Path

import networkx as nx

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "export_wiring.py"


def test_export_wiring_example_runs(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(
        sys, "argv", [str(EXAMPLE), "--out", str(tmp_path), "--epochs", "1", "--num-samples", "200"]
    )
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "networkx: 320 nodes, 840 edges, DAG=True" in out
    assert "as a Wiring: Wiring(num_nodes=320, num_edges=840, inputs=32, outputs=32" in out
    assert "same outputs: True" in out
    g = nx.read_graphml(tmp_path / "wiring.graphml")
    assert g.number_of_edges() == 840
    rows = (tmp_path / "wiring.csv").read_text().splitlines()
    assert rows[0] == (
        "source,target,edge_weight,weight,source_input_mask,source_output_mask,"
        "target_input_mask,target_output_mask,module"
    )
    assert len(rows) == 1 + 840
