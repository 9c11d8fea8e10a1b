from __future__ import annotations

import runpy
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_dag.py"


def test_custom_dag_example_runs(capsys):
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "Wiring(num_nodes=12, num_edges=18, inputs=3, outputs=3, acyclic=True)" in out
    assert "inputs: [0, 1, 2] outputs: [9, 10, 11]" in out
    assert "level 0: [0, 1, 2]" in out
    assert "level 1: [3, 4, 5, 6]" in out
    assert "level 2: [7, 8]" in out
    assert "level 3: [9, 10, 11]" in out
    assert "aggregated (12, 8) -> (12, 8) over 9 of 18 edges" in out
