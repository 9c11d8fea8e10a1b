from __future__ import annotations

import json

import networkx as nx
import pytest
import torch
from torch import nn

import dnwgraph
from dnwgraph import Wiring, WiringConv, random_dag
from dnwgraph.analysis import save_wiring, to_data, to_networkx
from dnwgraph.graph import read_wiring

FORMATS = ("graphml", "gexf", "json", "csv", "txt", "edgelist")


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
    assert dnwgraph.to_data is to_data


def test_wiring_graph_matches_the_wiring():
    w = Wiring([(0, 2), (1, 2), (2, 3), (0, 3)], input_nodes=[0, 1], output_nodes=[3])
    g = to_networkx(w)
    assert sorted(g.edges) == [(0, 2), (0, 3), (1, 2), (2, 3)]
    assert {v: d["node_level"] for v, d in g.nodes(data=True)} == {0: 0, 1: 0, 2: 1, 3: 2}
    assert [g.nodes[v]["role"] for v in range(4)] == ["input", "input", "hidden", "output"]
    assert all("weight" not in d for _, _, d in g.edges(data=True))  # no weights invented
    assert g.graph["acyclic"] is True


def test_conv_selected_edges_weights_and_dag(conv):
    g = to_networkx(conv)
    assert g.number_of_nodes() == conv.num_nodes
    assert g.number_of_edges() == int(conv.active_mask().sum()) == conv.k
    assert set(g.edges) == selected_set(conv)
    assert nx.is_directed_acyclic_graph(g)
    ei = conv.edge_index.t().tolist()
    for u, v, d in g.edges(data=True):
        w = float(conv.edge_weight.detach()[d["e_id"]])
        assert d["edge_weight"] == pytest.approx(w) and d["weight"] == pytest.approx(abs(w))
        assert ei[d["e_id"]] == [u, v]
    # levels are those of the candidate wiring, roles by candidate degree
    ref = conv_wiring = Wiring(conv.edge_index, conv.num_nodes)
    assert [g.nodes[v]["node_level"] for v in range(conv.num_nodes)] == ref.node_level().tolist()
    assert [v for v in g if g.nodes[v]["input_mask"]] == conv_wiring.input_nodes.tolist()


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
    assert g.graph["acyclic"] is False and "node_level" not in g.nodes[0]


@pytest.mark.parametrize("ext", FORMATS)
def test_round_trip_networkx_and_wiring(conv, tmp_path, ext):
    path = save_wiring(conv, tmp_path / f"w.{ext}")
    g = to_networkx(conv)
    back = Wiring.from_file(path, **({"num_nodes": conv.num_nodes} if ext == "csv" else {}))
    assert set(map(tuple, back.edge_index.t().tolist())) == selected_set(conv)
    assert back.num_nodes == conv.num_nodes
    has_edge = {v for e in g.edges for v in e}
    inputs = [v for v, d in g.nodes(data=True) if d["input_mask"]]
    outputs = [v for v, d in g.nodes(data=True) if d["output_mask"]]
    if ext == "csv":  # a CSV holds edges only: the roles of nodes with a selected edge
        inputs = [v for v in inputs if v in has_edge]
        outputs = [v for v in outputs if v in has_edge]
    assert back.input_nodes.tolist() == inputs and back.output_nodes.tolist() == outputs
    # networkx (and pandas for CSV) reads every format back with the weights
    if ext == "graphml":
        h = nx.read_graphml(path, node_type=int)
    elif ext == "gexf":
        h = nx.read_gexf(path, node_type=int)
    elif ext == "json":
        h = nx.node_link_graph(json.loads(path.read_text()))  # the current "edges" key
    elif ext == "csv":
        pd = pytest.importorskip("pandas")
        h = nx.from_pandas_edgelist(pd.read_csv(path), edge_attr=True, create_using=nx.DiGraph)
    else:
        h = nx.read_edgelist(path, nodetype=int, create_using=nx.DiGraph)
    assert set(h.edges) == set(g.edges)
    for u, v, d in g.edges(data=True):
        assert float(h.edges[u, v]["weight"]) == pytest.approx(d["weight"])
        assert float(h.edges[u, v]["edge_weight"]) == pytest.approx(d["edge_weight"])
    # Wiring.from_file keeps the learned (signed) weights
    by_edge = {(u, v): d["edge_weight"] for u, v, d in g.edges(data=True)}
    assert back.edge_weight.tolist() == pytest.approx(
        [by_edge[e] for e in map(tuple, back.edge_index.t().tolist())]
    )


def test_discovered_wiring_becomes_a_fixed_candidate_set(conv, tmp_path):
    path = save_wiring(conv, tmp_path / "found.graphml")
    fixed = WiringConv(read_wiring(path), ratio=1.0, selection="complete")
    assert fixed.num_edges == conv.k


def test_csv_columns(conv, tmp_path):
    lines = save_wiring(conv, tmp_path / "w.csv", all_candidates=True).read_text().splitlines()
    assert lines[0] == (
        "source,target,edge_weight,weight,source_input_mask,source_output_mask,"
        "target_input_mask,target_output_mask,selected"
    )
    assert len(lines) == 1 + conv.num_edges
    assert sum(r.split(",")[-1] == "true" for r in lines[1:]) == conv.k


def test_unknown_extension(conv, tmp_path):
    with pytest.raises(ValueError, match=r"unknown extension '\.dot' \(supported: .csv"):
        save_wiring(conv, tmp_path / "w.dot")
    assert not (tmp_path / "w.dot").exists()


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("bad.graphml", "<graphml><node", "malformed|not well-formed|syntax"),
        ("bad.json", "{not json", "not valid JSON"),
        ("bad.csv", "source,target\n0,x\n", "line 2: node id 'x' is not a plain integer"),
        ("bad.gexf", "garbage", "malformed|not well-formed|syntax"),
    ],
)
def test_malformed_files_give_clear_errors(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        Wiring.from_file(path)


# -- weights networkx algorithms accept, and a saved wiring seeding a layer ---------------------


def test_weight_is_a_strength_networkx_algorithms_accept(conv):
    g = to_networkx(conv)
    assert any(d["edge_weight"] < 0 for _, _, d in g.edges(data=True))  # the fixture has some
    assert all(d["weight"] >= 0 for _, _, d in g.edges(data=True))
    rank = nx.pagerank(g, weight="weight")
    assert sum(rank.values()) == pytest.approx(1.0)
    source = next(iter(nx.topological_sort(g)))
    dist = nx.single_source_dijkstra_path_length(g, source, weight="weight")
    assert all(d >= 0 for d in dist.values())
    longest = nx.dag_longest_path_length(g, weight="weight")
    assert longest <= sum(abs(w) for _, _, w in g.edges(data="edge_weight")) + 1e-9


def test_node_link_json_current_and_legacy_keys(conv, tmp_path):
    path = save_wiring(conv, tmp_path / "w.json")
    doc = json.loads(path.read_text())
    assert "edges" in doc and "links" not in doc
    legacy = tmp_path / "legacy.json"
    legacy.write_text(json.dumps(nx.node_link_data(to_networkx(conv), edges="links")))
    a, b = Wiring.from_file(path), Wiring.from_file(legacy)
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.edge_weight, b.edge_weight)


@pytest.mark.parametrize("ext", ["graphml", "gexf"])
def test_xml_formats_restore_integer_ids(tmp_path, ext):
    # 12 nodes: string ids would sort "10" before "2"
    w = Wiring([(0, 10), (2, 10), (10, 11), (1, 3)], num_nodes=12)
    back = Wiring.from_file(save_wiring(w, tmp_path / f"w.{ext}"))
    assert back.edge_index.tolist() == w.edge_index.tolist() and back.num_nodes == 12


@pytest.mark.parametrize("ext", FORMATS)
def test_saved_wiring_seeds_a_layer_with_the_same_outputs(conv, tmp_path, ext):
    x = torch.randn(conv.num_nodes, 3)
    extra = {"num_nodes": conv.num_nodes} if ext == "csv" else {}
    # selected edges only: a layer using every edge of the file
    loaded = Wiring.from_file(save_wiring(conv, tmp_path / f"sel.{ext}"), **extra)
    seeded = WiringConv.from_wiring(loaded)
    assert seeded.k == conv.k
    torch.testing.assert_close(seeded(x), conv(x))
    # every candidate: the same top-k as the saved layer
    path = save_wiring(conv, tmp_path / f"all.{ext}", all_candidates=True)
    loaded = Wiring.from_file(path, **extra)
    seeded = WiringConv.from_wiring(loaded, ratio=conv.k)
    assert torch.equal(seeded.edge_weight, conv.edge_weight.detach())
    assert torch.equal(seeded.active_mask(), conv.active_mask())
    torch.testing.assert_close(seeded(x), conv(x))


# -- torch_geometric Data ----------------------------------------------------------------------


def test_to_data_matches_to_networkx(conv):
    data, g = to_data(conv), to_networkx(conv)
    assert data.num_nodes == g.number_of_nodes() and data.num_edges == g.number_of_edges()
    pairs = data.edge_index.t().tolist()
    edges = {
        tuple(e): (w, i)
        for e, w, i in zip(pairs, data.edge_weight.tolist(), data.e_id.tolist(), strict=True)
    }
    assert edges == {(u, v): (d["edge_weight"], d["e_id"]) for u, v, d in g.edges(data=True)}
    assert data.input_mask.tolist() == [d["input_mask"] for _, d in g.nodes(data=True)]
    assert data.output_mask.tolist() == [d["output_mask"] for _, d in g.nodes(data=True)]
    assert data.node_level.tolist() == [d["node_level"] for _, d in g.nodes(data=True)]
    full = to_data(conv, all_candidates=True)
    assert full.num_edges == conv.num_edges
    assert torch.equal(full.selected[full.e_id.argsort()], conv.active_mask())


def test_to_data_of_a_model_reads_back_with_its_roles():
    # the issue: rebuilding from an export gave 44 inputs / 40 outputs instead of 32 / 32
    torch.manual_seed(0)
    model = dnwgraph.create_model("mnist1d_static")
    back = Wiring.from_data(to_data(model))
    assert back.input_nodes.numel() == 32 and back.output_nodes.numel() == 32
    assert torch.equal(back.input_nodes, model.wiring.input_nodes)
    assert torch.equal(back.output_nodes, model.wiring.output_nodes)
    assert back.num_edges == model.conv.k == 2048 and back.acyclic
    x = torch.randn(back.num_nodes, 2)
    torch.testing.assert_close(WiringConv.from_wiring(back)(x), model.conv(x))


def test_to_data_of_two_wirings_offsets_ids():
    model = TwoWirings()
    data = to_data(model)
    assert data.num_nodes == 7 and data.num_edges == 5
    assert data.module_names == ["a", "b.0"]
    assert data.module_index.tolist() == [0, 0, 0, 0, 1, 1, 1]
    g = to_networkx(model)
    assert set(map(tuple, data.edge_index.t().tolist())) == set(g.edges)
    cyc = to_data(WiringConv(Wiring([(0, 1), (1, 0), (1, 2)], acyclic=False), ratio=3))
    assert "node_level" not in cyc and cyc.acyclic is False


def test_to_networkx_returns_the_graph_its_argument_computes_with():
    """On a wiring, all its edges; on a layer, the selected edges, and with
    ``all_candidates`` the wiring's graph again."""
    w = random_dag("er", 12, seed=1, p=0.4)
    w = Wiring(w.edge_index, w.num_nodes, edge_weight=torch.randn(w.num_edges))
    a = dnwgraph.to_networkx(w)
    assert sorted(a.edges(data="edge_weight")) == sorted(
        zip(*w.edge_index.tolist(), w.edge_weight.tolist(), strict=True)
    )
    conv = WiringConv(w, ratio=5)
    selected = dnwgraph.to_networkx(conv)
    every = dnwgraph.to_networkx(conv, all_candidates=True)
    assert sorted(every.edges()) == sorted(a.edges())
    active = conv.edge_index[:, conv.active_mask()].t().tolist()
    assert sorted(selected.edges()) == sorted(map(tuple, active)) and len(active) == 5


# -- one naming of the roles: PyG's own converters carry them ----------------------------------


def weights_by_edge(w):
    return dict(zip(map(tuple, w.edge_index.t().tolist()), w.edge_weight.tolist(), strict=True))


def test_pyg_from_networkx_of_an_export_keeps_roles_and_weights():
    """The issue: ``Wiring.from_data(from_networkx(dnwgraph.to_networkx(model)))`` gave 44
    inputs instead of 32, because networkx named the roles ``is_input``/``is_output``."""
    from torch_geometric.utils import from_networkx
    from torch_geometric.utils import to_networkx as pyg_to_networkx

    torch.manual_seed(0)
    model = dnwgraph.create_model("mnist1d_static")
    ref = Wiring.from_data(to_data(model))
    for back in (
        Wiring.from_data(from_networkx(to_networkx(model))),
        Wiring.from_networkx(
            pyg_to_networkx(
                to_data(model),
                node_attrs=["input_mask", "output_mask"],
                edge_attrs=["edge_weight"],
            )
        ),
    ):
        assert back.input_nodes.numel() == 32 and back.output_nodes.numel() == 32
        assert torch.equal(back.input_nodes, ref.input_nodes)
        assert torch.equal(back.output_nodes, ref.output_nodes)
        assert weights_by_edge(back) == weights_by_edge(ref) and back.acyclic


def test_export_refuses_a_run_file_before_writing(tmp_path):
    from dnwgraph.errors import DNWGraphError

    (tmp_path / "config.yaml").write_text("{}")  # a run folder
    (tmp_path / "metrics.csv").write_text("epoch\n")
    with pytest.raises(DNWGraphError, match="is a file of the run"):
        save_wiring(Wiring([(0, 1)]), tmp_path / "metrics.csv")
    assert (tmp_path / "metrics.csv").read_text() == "epoch\n"
