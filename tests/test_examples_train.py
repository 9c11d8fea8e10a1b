"""examples/train_mnist1d.py runs (small settings), reports a changing wiring and both graphs."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_mnist1d.py"


def test_train_mnist1d_example_runs(capsys) -> None:
    main = runpy.run_path(str(EXAMPLE))["main"]
    accs = main(["--epochs", "3", "--num-samples", "1000"])
    out = capsys.readouterr().out
    assert "WiringConv(num_nodes=320, num_edges=41984, k=2048, selection='dnw'" in out
    assert "WiringConv(num_nodes=320, num_edges=41984, k=2048, selection='random'" in out
    lines = re.findall(r"epoch (\d): train loss ([\d.]+) .* swapped in (\d+) of 2048", out)
    assert [line[0] for line in lines] == ["1", "2", "3"] * 2
    assert int(lines[0][2]) > 0  # DNW: the straight-through gradient moved edges in
    assert [int(line[2]) for line in lines[3:]] == [0, 0, 0]  # the random graph is fixed
    # 800 training signals, 3 epochs, seed 0: both well above chance (10 %; this run prints
    # DNW 31.0 %, random 22.0 %), and the learned wiring beats the fixed random one
    assert accs["dnw"] >= 0.25 and accs["random"] >= 0.15
    assert accs["dnw"] > accs["random"]
    summary = re.search(r"DNW ([\d.]+)%, random graph with the same edges ([\d.]+)%", out)
    assert float(summary[1]) == round(100 * accs["dnw"], 1)
    assert float(summary[2]) == round(100 * accs["random"], 1)
