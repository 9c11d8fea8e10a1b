from __future__ import annotations

import json

import networkx as nx
import pytest
import torch
from torch import nn

import dnwgraph
from dnwgraph import Wiring, WiringConv, random_dag
from dnwgraph.analysis import save_wiring, to_networkx
from dnwgraph.graph.io import read_wiring

FORMATS = ("graphml", "gexf", "json", "csv")


@pytest.fixture
def conv():
    torch.manual_seed(0)
    wiring = random_dag("er", 30, seed=1)
    return WiringConv(wiring, ratio=0.4)


def selected_set(conv):
    ei = conv.edge_index[:, conv.active_mask()]
    return set(map(tuple, ei.t().tolist()))


def test_public_names():
    assert dnwgraph.to_networkx is to_networkx and dnwgraph.save_wiring is save_wiring


def test_wiring_graph_matches_the_wiring():
    w = Wiring([(0, 2), (1, 2), (2, 3), (0, 3)], input_nodes=[0, 1], output_nodes=[3])
    g = to_networkx(w)
    assert sorted(g.edges) == [(0, 2), (0, 3), (1, 2), (2, 3)]
    assert {v: d["level"] for v, d in g.nodes(data=True)} == {0: 0, 1: 0, 2: 1, 3: 2}
    assert [g.nodes[v]["role"] for v in range(4)] == ["input", "input", "hidden", "output"]
    assert all(d["weight"] == 1.0 for _, _, d in g.edges(data=True))
    assert g.graph["acyclic"] is True


def test_conv_selected_edges_weights_and_dag(conv):
    g = to_networkx(conv)
    assert g.number_of_nodes() == conv.num_nodes
    assert g.number_of_edges() == int(conv.active_mask().sum()) == conv.k
    assert set(g.edges) == selected_set(conv)
    assert nx.is_directed_acyclic_graph(g)
    ei = conv.edge_index.t().tolist()
    for u, v, d in g.edges(data=True):
        assert d["weight"] == pytest.approx(float(conv.edge_weight.detach()[d["index"]]))
        assert ei[d["index"]] == [u, v]
    # levels are those of the candidate wiring, roles by candidate degree
    ref = conv_wiring = Wiring(conv.edge_index, conv.num_nodes)
    assert [g.nodes[v]["level"] for v in range(conv.num_nodes)] == ref.node_level().tolist()
    assert [v for v in g if g.nodes[v]["is_input"]] == conv_wiring.input_nodes.tolist()


def test_all_candidates_flags_selected(conv):
    g = to_networkx(conv, all_candidates=True)
    assert g.number_of_edges() == conv.num_edges
    chosen = {(u, v) for u, v, s in g.edges(data="selected") if s}
    assert chosen == selected_set(conv)


class TwoWirings(nn.Module):
    def __init__(self):
        super().__init__()
        self.wiring = Wiring([(0, 2), (1, 2), (2, 3)], input_nodes=[0, 1], output_nodes=[3])
        self.a = WiringConv(self.wiring, ratio=3)
        self.b = nn.Sequential(WiringConv(Wiring([(0, 1), (1, 2), (0, 2)]), ratio=2))


def test_model_graph_has_unique_ids_and_module_attribute():
    model = TwoWirings()
    g = to_networkx(model)
    assert g.number_of_nodes() == 4 + 3
    assert g.number_of_edges() == 3 + 2
    assert [g.nodes[v]["module"] for v in range(7)] == ["a"] * 4 + ["b.0"] * 3
    assert [g.nodes[v]["local_id"] for v in range(7)] == [0, 1, 2, 3, 0, 1, 2]
    # the second module's edges are shifted by the first module's 4 nodes
    local_b = model.b[0].edge_index[:, model.b[0].active_mask()].t().tolist()
    assert {(u - 4, v - 4) for u, v in g.edges if u >= 4} == set(map(tuple, local_b))
    # roles of the module with a matching model wiring come from that wiring
    assert g.nodes[3]["role"] == "output" and g.nodes[0]["role"] == "input"
    assert g.graph["num_modules"] == 2


def test_model_without_wiring_and_bad_objects():
    with pytest.raises(ValueError, match="no WiringConv"):
        to_networkx(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="expected a Wiring"):
        to_networkx(42)
    with pytest.raises(ValueError, match="must hold keys"):
        to_networkx({"conv": {"edge_index": torch.zeros(2, 1, dtype=torch.long)}})


def test_cyclic_wiring_has_no_levels():
    conv = WiringConv(Wiring([(0, 1), (1, 0), (1, 2)], acyclic=False), ratio=3)
    g = to_networkx(conv)
    assert g.graph["acyclic"] is False and "level" not in g.nodes[0]


@pytest.mark.parametrize("ext", FORMATS)
def test_round_trip_networkx_and_wiring(conv, tmp_path, ext):
    path = save_wiring(conv, tmp_path / f"w.{ext}")
    g = to_networkx(conv)
    back = Wiring.from_file(path, **({"num_nodes": conv.num_nodes} if ext == "csv" else {}))
    assert set(map(tuple, back.edge_index.t().tolist())) == selected_set(conv)
    assert back.num_nodes == conv.num_nodes
    if ext != "csv":  # CSV holds edges only
        inputs = [v for v, d in g.nodes(data=True) if d["is_input"]]
        outputs = [v for v, d in g.nodes(data=True) if d["is_output"]]
        assert back.input_nodes.tolist() == inputs and back.output_nodes.tolist() == outputs
    # networkx reads every format back with the weights
    if ext == "graphml":
        h = nx.read_graphml(path, node_type=int)
    elif ext == "gexf":
        h = nx.read_gexf(path, node_type=int)
    elif ext == "json":
        h = nx.node_link_graph(json.loads(path.read_text()), edges="links")
    else:
        h = nx.read_edgelist(
            path.read_text().splitlines()[2:],
            delimiter=",",
            nodetype=int,
            data=[("weight", float), ("module", str)],
            create_using=nx.DiGraph,
        )
    assert set(h.edges) == set(g.edges)
    for u, v, d in g.edges(data=True):
        assert float(h.edges[u, v]["weight"]) == pytest.approx(d["weight"])


def test_discovered_wiring_becomes_a_fixed_candidate_set(conv, tmp_path):
    path = save_wiring(conv, tmp_path / "found.graphml")
    fixed = WiringConv(read_wiring(path), ratio=1.0, selection="complete")
    assert fixed.num_edges == conv.k


def test_csv_columns(conv, tmp_path):
    lines = save_wiring(conv, tmp_path / "w.csv", all_candidates=True).read_text().splitlines()
    assert lines[0].startswith("# dnwgraph wiring: num_nodes=30")
    assert lines[1] == "source,target,weight,module,selected"
    assert len(lines) == 2 + conv.num_edges
    assert sum(int(r.split(",")[-1]) for r in lines[2:]) == conv.k


def test_unknown_extension(conv, tmp_path):
    with pytest.raises(ValueError, match=r"unknown extension '\.txt' \(supported: .csv"):
        save_wiring(conv, tmp_path / "w.txt")


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("bad.graphml", "<graphml><node", "malformed|not well-formed|syntax"),
        ("bad.json", "{not json", "not valid JSON"),
        ("bad.csv", "source,target\n0,x\n", "line 2: expected two integer node ids"),
        ("bad.gexf", "garbage", "malformed|not well-formed|syntax"),
    ],
)
def test_malformed_files_give_clear_errors(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        Wiring.from_file(path)
