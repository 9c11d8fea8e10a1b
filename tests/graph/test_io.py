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
