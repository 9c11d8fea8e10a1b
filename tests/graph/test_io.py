from __future__ import annotations

import json

import networkx as nx
import pytest
import torch

from dnwgraph import Wiring
from dnwgraph.graph.io import write_edge_list_csv, write_json


@pytest.fixture
def wiring():
    # 12 nodes so that string ids "10" / "11" would sort wrongly if read as text
    edges = [(0, 3), (1, 3), (2, 4), (3, 10), (4, 10), (10, 11), (3, 5), (2, 11), (0, 9)]
    return Wiring(edges, num_nodes=12, input_nodes=[0, 1, 2], output_nodes=[5, 9, 11])


def assert_same(a, b):
    assert a.num_nodes == b.num_nodes and a.acyclic == b.acyclic
    assert torch.equal(a.edge_index, b.edge_index)
    assert torch.equal(a.input_nodes, b.input_nodes)
    assert torch.equal(a.output_nodes, b.output_nodes)


def test_csv_round_trip(wiring, tmp_path):
    path = tmp_path / "w.csv"
    write_edge_list_csv(wiring, path)
    assert path.read_text().splitlines()[:2] == ["source,target", "0,3"]
    back = Wiring.from_file(path, num_nodes=12, input_nodes=[0, 1, 2], output_nodes=[5, 9, 11])
    assert_same(back, wiring)


def test_csv_headerless_extra_columns_comments(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("# a comment\n0,1\n\n1,2\n")
    assert Wiring.from_file(path).edge_index.tolist() == [[0, 1], [1, 2]]
    path.write_text("weight,target,source\n0.5,1,0\n0.1,2,1\n")
    assert Wiring.from_file(path).edge_index.tolist() == [[0, 1], [1, 2]]


def test_json_round_trip(wiring, tmp_path):
    path = tmp_path / "w.json"
    write_json(wiring, path)
    assert_same(Wiring.from_file(path), wiring)
    # keyword arguments win over the file
    assert Wiring.from_file(path, input_nodes=[0]).input_nodes.tolist() == [0]


def test_json_minimal_and_node_link(wiring, tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"edges": [[0, 1], [1, 2]]}))
    w = Wiring.from_file(path)
    assert w.num_nodes == 3 and w.output_nodes.tolist() == [2]
    path.write_text(json.dumps(nx.node_link_data(wiring.to_networkx(), edges="links")))
    assert_same(Wiring.from_file(path), wiring)
    path.write_text(json.dumps(nx.node_link_data(wiring.to_networkx(), edges="edges")))
    assert_same(Wiring.from_file(path), wiring)


@pytest.mark.parametrize("ext, write", [(".graphml", nx.write_graphml), (".gexf", nx.write_gexf)])
def test_networkx_formats_round_trip(wiring, tmp_path, ext, write):
    path = tmp_path / f"w{ext}"
    write(wiring.to_networkx(), path)
    assert_same(Wiring.from_file(path), wiring)
    cyclic = Wiring([(0, 1), (1, 0), (1, 2)], acyclic=False, output_nodes=[2])
    write(cyclic.to_networkx(), path)
    assert_same(Wiring.from_file(path), cyclic)


def test_missing_file_and_unknown_extension(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        Wiring.from_file(missing)
    with pytest.raises(
        ValueError, match=r"unknown extension '\.txt' .*\.csv, \.gexf, \.graphml, \.json"
    ):
        Wiring.from_file(tmp_path / "w.txt")


@pytest.mark.parametrize(
    "text, match",
    [
        ("source,target\n0,1\n1,x\n", r"line 3: expected two integer node ids .*'1,x'"),
        ("0,1\n2\n", r"line 2: expected two integer node ids .*'2'"),
        ("from,to\n0,1\n", r"line 1: a header must name 'source' and 'target'"),
        ("source,target\n", "no edges found"),
        ("0,1\n1,0\n", "cycle through node 0"),
    ],
)
def test_malformed_csv(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        Wiring.from_file(path)


@pytest.mark.parametrize(
    "text, match",
    [
        ("{not json", "not valid JSON"),
        ("[[0, 1]]", "expected a JSON object"),
        ('{"pairs": [[0, 1]]}', r"expected a key 'edges' .*\['pairs'\]"),
        ('{"edges": [[0, 1, 2]]}', "pairs"),
        ('{"edges": 5}', "'edges' must be a list"),
    ],
)
def test_malformed_json(tmp_path, text, match):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        Wiring.from_file(path)


def test_csv_with_a_byte_order_mark_reads(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffsource,target\r\n0,1\r\n1,2\r\n".encode())
    assert Wiring.from_file(path).edge_index.tolist() == [[0, 1], [1, 2]]
    path.write_bytes("\ufeff0,1\n".encode())
    assert Wiring.from_file(path).num_edges == 1


@pytest.mark.parametrize(
    "text, name",
    [("source;target\n0;1\n", "semicolons"), ("0\t1\n", "tabs"), ("0 1\n1 2\n", "spaces")],
)
def test_csv_with_another_separator_says_so(tmp_path, text, name):
    path = tmp_path / "w.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"line 1: the columns are separated by {name}"):
        Wiring.from_file(path)


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_a_binary_file_is_named(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"PK\x03\x04\x80\x81\xfe\xff" * 8)
    with pytest.raises(ValueError, match=rf"model\{suffix}: not a UTF-8 text file \(byte 0x80"):
        Wiring.from_file(path)


def test_csv_with_nul_bytes_names_the_line(tmp_path):
    path = tmp_path / "w.csv"
    path.write_bytes(b"0,1\n\x00\x00\n")
    with pytest.raises(ValueError, match=r"w\.csv( line 2: expected two integer|: not a CSV)"):
        Wiring.from_file(path)


def test_json_flags_must_be_booleans(tmp_path):
    path = tmp_path / "w.json"
    path.write_text('{"edges": [[0, 1]], "acyclic": "yes"}')
    with pytest.raises(ValueError, match=r"w\.json: 'acyclic' must be True or False \(got 'yes'\)"):
        Wiring.from_file(path)
    path.write_text('{"edges": [[0, 1]], "num_nodes": "5"}')
    with pytest.raises(ValueError, match=r"w\.json: 'num_nodes' must be an int"):
        Wiring.from_file(path)


def test_unknown_node_role_is_named(tmp_path):
    g = nx.DiGraph([(0, 1), (1, 2)])
    nx.set_node_attributes(g, {0: "input", 1: "banana", 2: "output"}, "role")
    path = tmp_path / "w.graphml"
    nx.write_graphml(g, path)
    with pytest.raises(ValueError, match=r"node 1 has role 'banana'; a role is one of"):
        Wiring.from_file(path)
    g.nodes[1]["role"] = "hidden"
    nx.write_graphml(g, path)
    assert Wiring.from_file(path).input_nodes.tolist() == [0]


def test_unknown_boolean_string_is_named():
    g = nx.DiGraph([(0, 1)])
    nx.set_node_attributes(g, {0: "maybe", 1: "false"}, "is_input")
    with pytest.raises(
        ValueError, match=r"node 0: 'is_input' must be true or false \(got 'maybe'\)"
    ):
        Wiring.from_networkx(g)
