"""Build a wiring from an edge list on disk, print its levels, run one DNW aggregation.

Run: ``python examples/custom_dag.py``
"""

from __future__ import annotations

from pathlib import Path

import torch

from dnwgraph import Wiring, WiringConv


def main() -> None:
    wiring = Wiring.from_file(Path(__file__).with_name("edges.csv"))
    print(wiring)
    print("inputs:", wiring.input_nodes.tolist(), "outputs:", wiring.output_nodes.tolist())
    for depth, level in enumerate(wiring.levels()):
        print(f"level {depth}: {level.tolist()}")

    torch.manual_seed(0)
    conv = WiringConv(wiring, 0.5)  # keep the top half of the candidate edges by |w|
    x = torch.randn(wiring.num_nodes, 8)  # [num_nodes, features]
    out = conv(x)
    print(
        f"aggregated {tuple(x.shape)} -> {tuple(out.shape)} over "
        f"{int(conv.active_mask().sum())} of {wiring.num_edges} edges"
    )


if __name__ == "__main__":
    main()
