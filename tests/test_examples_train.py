"""examples/train_mnist1d.py runs (tiny settings) and reports a changing wiring."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_mnist1d.py"


def test_train_mnist1d_example_runs(capsys) -> None:
    main = runpy.run_path(str(EXAMPLE))["main"]
    acc = main(["--epochs", "2", "--num-samples", "200"])
    out = capsys.readouterr().out
    assert "WiringConv(num_nodes=320, num_edges=41984, k=2048" in out
    lines = re.findall(r"epoch (\d): train loss ([\d.]+) .* swapped in (\d+) of 2048", out)
    assert [line[0] for line in lines] == ["1", "2"]
    assert int(lines[0][2]) > 0  # the straight-through gradient moved edges in
    assert 0.0 <= acc <= 1.0
