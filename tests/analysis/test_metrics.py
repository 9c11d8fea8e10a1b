from __future__ import annotations

import networkx as nx
import pytest
import torch
from _analysis_helpers import shared_fake_run

from dnwgraph import Wiring, WiringConv, random_dag
from dnwgraph.analysis import (
    average_clustering,
    average_path_length,
    churn_series,
    dead_nodes,
    depth,
    edge_churn,
    live_node_mask,
    load_snapshot,
    load_snapshots,
    model_cost,
    random_view,
    read_metrics_csv,
    to_networkx,
    wiring_metrics,
)
from dnwgraph.models.views import wiring_views

SEEDS = range(4)


@pytest.fixture
def fake_run(tmp_path_factory):
    return shared_fake_run(tmp_path_factory)


def random_conv(seed: int, kind: str = "er", n: int = 36, ratio: float = 0.4) -> WiringConv:
    torch.manual_seed(seed)
    return WiringConv(random_dag(kind, n, seed=seed), ratio=ratio)


def nx_depth(g: nx.DiGraph) -> int:
    """Longest input->output path by networkx: add a super source S before the inputs and a
    sink T after the outputs; in the part between them every longest path runs S -> T."""
    h = g.copy()
    h.add_edges_from(("S", v) for v, d in g.nodes(data=True) if d["input_mask"])
    h.add_edges_from((v, "T") for v, d in g.nodes(data=True) if d["output_mask"])
    between = (nx.descendants(h, "S") & nx.ancestors(h, "T")) | {"S", "T"}
    return nx.dag_longest_path_length(h.subgraph(between), weight="hops") - 2


@pytest.mark.parametrize("seed", SEEDS)
def test_statistics_equal_networkx(seed):
    conv = random_conv(seed, kind=("er", "ws", "ba", "er")[seed])
    g = to_networkx(conv)
    m = wiring_metrics(conv, num_random=0)[0]
    assert m.selected_edges == g.number_of_edges() == conv.k
    assert m.density == pytest.approx(conv.k / conv.num_edges)
    assert m.in_degree == [g.in_degree(v) for v in range(conv.num_nodes)]
    assert m.out_degree == [g.out_degree(v) for v in range(conv.num_nodes)]
    assert m.width == [len(level) for level in nx.topological_generations(g)]
    assert m.depth == nx_depth(g)
    assert m.stats.clustering == pytest.approx(nx.average_clustering(nx.Graph(g.to_undirected())))
    lengths = [
        d for u, row in nx.all_pairs_shortest_path_length(g) for v, d in row.items() if u != v
    ]
    assert m.stats.avg_path_length == pytest.approx(sum(lengths) / len(lengths))
    deg = torch.tensor(m.in_degree, dtype=torch.float64)
    assert m.stats.in_degree_std == pytest.approx(float(deg.std(unbiased=False)), rel=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_dead_nodes_equal_networkx_reachability(seed):
    conv = random_conv(seed, ratio=0.2)
    g = to_networkx(conv)
    inputs = [v for v, d in g.nodes(data=True) if d["input_mask"]]
    outputs = [v for v, d in g.nodes(data=True) if d["output_mask"]]
    fed = set(inputs).union(*(nx.descendants(g, v) for v in inputs))
    heard = set(outputs).union(*(nx.ancestors(g, v) for v in outputs))
    live = live_node_mask(conv)[""]
    assert set(live.nonzero().view(-1).tolist()) == fed & heard
    assert dead_nodes(conv)[""].tolist() == sorted(set(g) - (fed & heard))
    m = wiring_metrics(conv, num_random=0)[0]
    assert (m.unreached, m.dead_ends, m.dead) == (
        len(set(g) - fed),
        len(set(g) - heard),
        len(set(g) - (fed & heard)),
    )


def test_dead_nodes_iterate_to_a_fixed_point():
    # 0 -> 1 -> 2 -> 3 -> 6 (output) is live; 4 -> 5 is a chain hanging off node 1 that ends
    # nowhere: one pruning pass removes 5 only (4 still has an outgoing edge), the fixed point
    # removes both; 7 -> 8 -> 6 starts at a node no input reaches.
    w = Wiring(
        [(0, 1), (1, 2), (2, 3), (3, 6), (1, 4), (4, 5), (7, 8), (8, 6)],
        num_nodes=9,
        input_nodes=[0],
        output_nodes=[6],
    )
    assert dead_nodes(w)[""].tolist() == [4, 5, 7, 8]
    assert depth(w) == {"": 4}


def test_depth_none_for_cycles_and_unreachable_outputs():
    assert depth(Wiring([(0, 1), (1, 0)], acyclic=False)) == {"": None}
    w = Wiring([(0, 1), (2, 3)], input_nodes=[0], output_nodes=[3])
    assert depth(w) == {"": None}


def test_clustering_and_path_length_by_hand():
    # triangle 0-1-2 plus a pendant 3 attached to 2
    ei = torch.tensor([[0, 0, 1, 2], [1, 2, 2, 3]])
    assert average_clustering(ei, 4) == pytest.approx((1 + 1 + 1 / 3 + 0) / 4)
    # reachable ordered pairs: 0->1 (1), 0->2 (1), 0->3 (2), 1->2 (1), 1->3 (2), 2->3 (1)
    assert average_path_length(ei, 4) == pytest.approx(8 / 6)
    assert average_path_length(torch.tensor([[0], [1]]), 3) == 1.0
    assert average_path_length(torch.zeros(2, 0, dtype=torch.long), 3) is None


def test_path_length_sampled_sources_is_close():
    conv = random_conv(0, n=60)
    (view,) = wiring_views(conv)
    ei, _ = view.selected()
    exact = average_path_length(ei, 60)
    assert average_path_length(ei, 60, max_sources=30) == pytest.approx(exact, rel=0.3)


def test_random_baseline_keeps_the_edge_count():
    conv = random_conv(1)
    (view,) = wiring_views(conv)
    rnd = random_view(view, seed=3)
    assert rnd.num_selected == view.num_selected
    assert not torch.equal(rnd.active, view.active)
    m = wiring_metrics(conv, num_random=2)[0]
    assert m.random is not None and m.random.selected_edges == conv.k
    with pytest.raises(ValueError, match="'num_random' must be >= 0"):
        wiring_metrics(conv, num_random=-1)


def test_edge_churn_by_hand():
    a = Wiring([(0, 2), (1, 2), (2, 3)])
    b = Wiring([(0, 2), (0, 3), (2, 3)])
    churn = edge_churn(a, b)[""]
    assert churn == {"jaccard": 0.5, "swapped_in": 1.0, "swapped_out": 1.0, "kept": 2.0}
    rows = churn_series([(0, a), (1, b), (2, b)])
    assert [r["epoch"] for r in rows] == [1.0, 2.0]
    assert [r["jaccard"] for r in rows] == [0.5, 1.0]
    assert [r["jaccard_final"] for r in rows] == [1.0, 1.0]
    with pytest.raises(ValueError, match="different modules"):
        edge_churn({"x": _snap(a)}, {"y": _snap(b)})


def _snap(w):
    return {
        "edge_index": w.edge_index,
        "edge_weight": torch.ones(w.num_edges),
        "active": torch.ones(w.num_edges, dtype=torch.bool),
        "num_nodes": w.num_nodes,
    }


def test_snapshots_of_a_run(fake_run):
    path, model = fake_run
    snaps = load_snapshots(path)
    assert [e for e, _ in snaps] == [0, 1, 2, 3]
    assert set(snaps[0][1]) == {"executor.conv"}
    # the last snapshot is the model's final wiring
    assert edge_churn(snaps[-1][1], model)["executor.conv"]["jaccard"] == 1.0
    rows = churn_series(snaps)
    assert all(0.0 <= r["jaccard"] < 1.0 and r["swapped_in"] > 0 for r in rows)


def test_snapshots_are_matched_by_module_name_only(fake_run):
    """A snapshot of another module name (StaticNeuralGraph's ``graph.conv`` of up to 0.2
    included) is not renamed to meet the model: churn refuses it, naming both sides."""
    path, model = fake_run
    snaps = load_snapshots(path)
    old = {"graph.conv": snaps[-1][1]["executor.conv"]}
    with pytest.raises(ValueError, match=r"\(got \['graph.conv'\] and \['executor.conv'\]\)"):
        edge_churn(old, model)
    assert set(edge_churn(old, old)) == {"graph.conv"}
    with pytest.raises(ValueError, match="different modules"):
        edge_churn({"other.conv": snaps[-1][1]["executor.conv"]}, model)


def test_malformed_snapshots(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_snapshot(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a readable torch file"):
        load_snapshot(bad)
    snap = {"c": _snap(Wiring([(0, 1)]))}
    snap["c"]["active"] = torch.ones(3, dtype=torch.bool)
    torch.save(snap, bad)
    with pytest.raises(ValueError, match="'active' must have shape \\[1\\]"):
        load_snapshot(bad)
    with pytest.raises(FileNotFoundError, match="no wiring snapshots"):
        load_snapshots(tmp_path)


def test_metrics_csv(fake_run, tmp_path):
    cols = read_metrics_csv(fake_run[0])
    assert cols["epoch"] == [1.0, 2.0, 3.0] and len(cols["test_acc"]) == 3
    bad = tmp_path / "metrics.csv"
    bad.write_text("epoch,loss\n1,abc\n")
    with pytest.raises(ValueError, match="line 2: column 'loss' must be a number"):
        read_metrics_csv(bad)
    bad.write_text("step,loss\n1,2\n")
    with pytest.raises(ValueError, match="'epoch' column"):
        read_metrics_csv(bad)


def test_model_cost_counts_selected_edges(fake_run):
    from dnwgraph import count_macs, count_params

    model = fake_run[1]
    cost = model_cost(model, (40,))
    assert cost == {"params": count_params(model), "macs": count_macs(model, (1, 40))}


def test_unreached_and_dead_ends_have_no_alias():
    conv = WiringConv(Wiring([(0, 2), (1, 2), (2, 3), (0, 3)]), ratio=2)
    m = wiring_metrics(conv, num_random=0)[0]
    # their names up to 0.2 are gone: no alias
    assert not hasattr(m, "no_input") and not hasattr(m, "no_output")
    assert "no_input" not in m.as_dict() and {"unreached", "dead_ends"} <= set(m.as_dict())
