"""A new wiring file format: tab-separated ``source<TAB>target<TAB>weight`` rows, ``.tsv``.

A format is an object with ``read(path) -> Data`` and ``write(data, path)`` (the protocol
``dnwgraph.graph.WiringFormat``), registered by suffix with ``dnwgraph.graph.register_format``.
The ``Data`` is a wiring's layout: ``edge_index [2, E]``, ``num_nodes``, optionally
``edge_weight [E]``, ``input_mask``/``output_mask [N]`` (bool), ``acyclic``, ``self_loops``.
``Wiring.from_file`` validates what ``read`` returns (and names the file in every error);
``save_wiring`` hands ``write`` what ``dnwgraph.to_data`` makes and renames the file into
place when ``write`` returns.

Run it: ``python examples/tsv_format.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch_geometric.data import Data

import dnwgraph
from dnwgraph.errors import DNWGraphError
from dnwgraph.graph import list_formats, register_format


class TSVFormat:
    """``source<TAB>target<TAB>weight`` per line; a ``#`` line names the input nodes."""

    def read(self, path: Path) -> Data:
        src, dst, weight, inputs = [], [], [], None
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            if line.startswith("# inputs:"):
                inputs = [int(v) for v in line.split(":", 1)[1].split()]
                continue
            cells = line.split("\t")
            if len(cells) != 3:
                raise DNWGraphError(f"line {lineno}: expected 'source<TAB>target<TAB>weight'")
            src.append(int(cells[0]))
            dst.append(int(cells[1]))
            weight.append(float(cells[2]))
        n = max(src + dst) + 1
        data = Data(edge_index=torch.tensor([src, dst]), num_nodes=n)
        data.edge_weight = torch.tensor(weight)
        if inputs is not None:
            data.input_mask = torch.zeros(n, dtype=torch.bool)
            data.input_mask[inputs] = True
        return data

    def write(self, data: Data, path: Path) -> None:
        inputs = data.input_mask.nonzero().view(-1).tolist()
        weight = data.edge_weight.tolist() if data.edge_weight is not None else None
        lines = ["# inputs: " + " ".join(map(str, inputs))]
        for i, (u, v) in enumerate(data.edge_index.t().tolist()):
            lines.append(f"{u}\t{v}\t{1.0 if weight is None else weight[i]!r}")
        path.write_text("\n".join(lines) + "\n")


def main() -> None:
    if ".tsv" not in list_formats():
        register_format(".tsv", TSVFormat())
    wiring = dnwgraph.Wiring(
        [(0, 2), (1, 2), (2, 3)], input_nodes=[0, 1], edge_weight=[0.5, -1.0, 2.0]
    )
    path = dnwgraph.save_wiring(wiring, Path(tempfile.mkdtemp()) / "wiring.tsv")
    back = dnwgraph.Wiring.from_file(path)
    print(path.read_text().splitlines()[:2])
    print(back, back.edge_weight.tolist(), back.input_nodes.tolist())


if __name__ == "__main__":
    main()
