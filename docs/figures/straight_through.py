"""Draw docs/img/straight_through.png: DNW's forward (top-k edges) and backward (every edge).

The numbers in the figure are computed by ``WiringConv`` on a 5-edge wiring, not drawn by hand.
Run: ``python docs/figures/straight_through.py``
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import torch  # noqa: E402

from dnwgraph import Wiring, WiringConv  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "img" / "straight_through.png"


def main() -> None:
    wiring = Wiring([(0, 2), (1, 2), (0, 3), (1, 3), (2, 3)], num_nodes=4)
    conv = WiringConv(wiring, ratio=3)
    with torch.no_grad():  # weights in the wiring's edge order
        conv.edge_weight[torch.argsort(conv.edge_perm)] = torch.tensor([0.9, -0.2, 0.1, 0.6, -0.7])
    torch.manual_seed(1)
    x = torch.randn(4, 16)
    g = torch.randn(4, 16)  # dL/d out
    (conv(x) * g).sum().backward()
    active = conv.active_mask()
    src, dst = conv.edge_index.tolist()
    w = conv.edge_weight.detach().tolist()
    grad = conv.edge_weight.grad.tolist()

    graph = nx.DiGraph()
    for node, level in enumerate(wiring.node_level().tolist()):
        graph.add_node(node, level=level)
    pos = nx.multipartite_layout(graph, subset_key="level")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    panels = (
        ("forward: top-3 edges by |w|", lambda e: f"w={w[e]:+.1f}"),
        ("backward: every candidate gets <x_u, dL/dI_v>", lambda e: f"{grad[e]:+.2f}"),
    )
    for ax, (title, label) in zip(axes, panels, strict=True):
        nx.draw_networkx_nodes(graph, pos, ax=ax, node_color="#dde6f3", edgecolors="#345")
        nx.draw_networkx_labels(graph, pos, ax=ax)
        for e, (u, v) in enumerate(zip(src, dst, strict=True)):
            on = bool(active[e])
            backward = ax is axes[1]
            nx.draw_networkx_edges(
                graph,
                pos,
                edgelist=[(u, v)],
                ax=ax,
                width=1 + 4 * abs(w[e]) if not backward else 2,
                style="solid" if on or backward else "dashed",
                edge_color=("#c0392b" if grad[e] > 0 else "#2471a3")
                if backward
                else ("#222" if on else "#aaa"),
                arrows=True,
                arrowsize=15,
                connectionstyle="arc3,rad=0.15",
            )
        nx.draw_networkx_edge_labels(
            graph,
            pos,
            edge_labels={
                (u, v): label(e) + ("" if active[e] else "\n(unused)")
                for e, (u, v) in enumerate(zip(src, dst, strict=True))
            },
            ax=ax,
            font_size=8,
            connectionstyle="arc3,rad=0.15",
            bbox={"boxstyle": "round", "fc": "white", "ec": "none", "alpha": 0.9},
        )
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    axes[1].text(
        0.5,
        -0.04,
        "blue: an SGD step increases w, red: it decreases w (unused edges included)",
        transform=axes[1].transAxes,
        ha="center",
        fontsize=8,
    )
    fig.suptitle("Discovering Neural Wirings: forward uses the top-k, backward reaches all edges")
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
