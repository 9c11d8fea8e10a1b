"""Train a small DNW model briefly, export the wiring it discovered, and analyse it with networkx.

    python examples/export_wiring.py [--out DIR] [--epochs 3] [--num-samples 1000]

Steps: train ``mnist1d_static`` (320 channel-nodes, 2% of 41,984 candidate edges) on generated
MNIST-1D for a few epochs; write its selected wiring as GraphML and CSV; read the GraphML back
with networkx (a DAG whose nodes carry level/role and whose edges carry the learned weight) and
with ``dnwgraph.Wiring.from_file`` (a candidate set for a new model); compare it with a random
wiring of as many edges; and ``compact`` the model (dead nodes removed, same predictions).
Takes about 15 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import networkx as nx
import torch
from torch import nn

import dnwgraph
from dnwgraph.analysis import compact, save_wiring, wiring_metrics
from dnwgraph.train import create_dataset


def train_briefly(model: nn.Module, epochs: int, num_samples: int = 1000, seed: int = 0) -> float:
    """A few epochs of Adam on generated MNIST-1D signals (80% train); returns the test
    accuracy."""
    data = create_dataset("mnist1d", num_samples=num_samples)
    x, y = data.train.x.reshape(len(data.train), -1), data.train.y
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(50):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return accuracy(model.eval(), data.test.x.reshape(len(data.test), -1), data.test.y)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model(x).argmax(1) == y).float().mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/export_wiring"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--num-samples", type=int, default=1000, help="MNIST-1D signals")
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    model = dnwgraph.create_model("mnist1d_static", ratio=0.02)
    acc = train_briefly(model, args.epochs, args.num_samples)
    print(f"trained {args.epochs} epochs: test accuracy {acc:.3f}")

    # 1. export the discovered wiring (selected edges only)
    graphml = save_wiring(model, args.out / "wiring.graphml")
    csv = save_wiring(model, args.out / "wiring.csv")
    print(f"wrote {graphml} and {csv}")

    # 2. read it back with networkx and analyse it there
    g = nx.read_graphml(graphml, node_type=int)
    print(
        f"networkx: {g.number_of_nodes()} nodes, {g.number_of_edges()} edges, "
        f"DAG={nx.is_directed_acyclic_graph(g)}, "
        f"longest path={nx.dag_longest_path_length(g, weight='hops')} edges"
    )
    hubs = sorted(g.nodes, key=g.out_degree, reverse=True)[:3]
    for v in hubs:
        d = g.nodes[v]
        print(f"  hub node {v}: level {d['node_level']}, {d['role']}, out-degree {g.out_degree(v)}")
    strongest = max(g.edges(data="edge_weight"), key=lambda e: abs(e[2]))
    print(f"  strongest edge {strongest[0]} -> {strongest[1]}: w = {strongest[2]:+.3f}")

    # 3. the same file as a candidate wiring for a new model
    found = dnwgraph.Wiring.from_file(graphml)
    print(f"as a Wiring: {found}")

    # 4. learned vs a random wiring with as many edges
    m = wiring_metrics(model, num_random=3)[0]
    r = m.random
    assert r is not None
    print(f"{'':24}{'learned':>10}{'random':>10}")
    print(f"{'dead nodes':24}{m.dead:>10}{r.dead:>10.1f}")
    print(f"{'depth':24}{m.depth:>10}{r.depth:>10.1f}")
    print(f"{'in-degree std':24}{m.stats.in_degree_std:>10.2f}{r.in_degree_std:>10.2f}")
    print(f"{'clustering':24}{m.stats.clustering:>10.3f}{r.clustering:>10.3f}")

    # 5. compact inference: dead nodes removed, identical predictions
    small = compact(model)
    with torch.no_grad():
        x = torch.randn(64, 40)
        same = torch.allclose(small(x), model(x), atol=1e-5)
    print(
        f"compact: {model.num_nodes} -> {small.num_nodes} nodes, "
        f"{dnwgraph.count_params(model)} -> {dnwgraph.count_params(small)} parameters, "
        f"same outputs: {same}"
    )


if __name__ == "__main__":
    main()
