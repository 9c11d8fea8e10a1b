"""Every wiring file format: round trips, what other tools read, and hostile files."""

from __future__ import annotations

import json
import os

import networkx as nx
import pytest
import torch

import dnwgraph
from dnwgraph import CycleError, Wiring, save_wiring, to_data
from dnwgraph.errors import DNWGraphError
from dnwgraph.graph import list_formats, read_wiring

FORMATS = [".csv", ".edgelist", ".gexf", ".graphml", ".json", ".txt"]


@pytest.fixture
def wiring():
    # 12 nodes so that string ids "10" / "11" would sort wrongly if read as text; node 8 has no
    # edge; node 5 is both a hidden-looking target and an output; weights of both signs
    edges = [(0, 3), (1, 3), (2, 4), (3, 10), (4, 10), (10, 11), (3, 5), (2, 11), (0, 9)]
    weight = [0.5, -1.25, 2.0, -0.125, 3.5, -4.0, 0.25, 1.5, -0.75]
    return Wiring(
        edges, 12, input_nodes=[0, 1, 2, 8], output_nodes=[5, 8, 9, 11], edge_weight=weight
    )


def assert_same(a, b):
    assert (a.num_nodes, a.acyclic, a.self_loops) == (b.num_nodes, b.acyclic, b.self_loops)
    assert a.edge_index.tolist() == b.edge_index.tolist()
    assert a.input_nodes.tolist() == b.input_nodes.tolist()
    assert a.output_nodes.tolist() == b.output_nodes.tolist()
    assert (a.edge_weight is None) == (b.edge_weight is None)
    if a.edge_weight is not None:
        assert a.edge_weight.tolist() == b.edge_weight.tolist()


def test_the_registered_formats():
    assert list_formats() == FORMATS


@pytest.mark.parametrize("ext", FORMATS)
def test_every_format_round_trips_edges_weights_and_roles(wiring, tmp_path, ext):
    path = save_wiring(wiring, tmp_path / f"w{ext}")
    if ext == ".csv":  # a CSV holds edges only: node 8, without edges, keeps no role
        wiring = Wiring(
            wiring.edge_index,
            12,
            input_nodes=[0, 1, 2],
            output_nodes=[5, 9, 11],
            edge_weight=wiring.edge_weight,
        )
    assert_same(read_wiring(path, **({"num_nodes": 12} if ext == ".csv" else {})), wiring)
    cyclic = Wiring(
        [(0, 1), (1, 0), (1, 2), (2, 2)],
        acyclic=False,
        self_loops=True,
        input_nodes=[0],
        output_nodes=[2],
        edge_weight=[1.0, -2.0, 3.0, 0.5],
    )
    assert_same(Wiring.from_file(save_wiring(cyclic, tmp_path / f"c{ext}")), cyclic)
    plain = Wiring([(0, 2), (1, 2)])
    assert_same(Wiring.from_file(save_wiring(plain, tmp_path / f"p{ext}")), plain)


def test_csv_without_num_nodes_keeps_the_roles_of_nodes_with_edges(wiring, tmp_path):
    back = Wiring.from_file(save_wiring(wiring, tmp_path / "w.csv"))
    assert back.num_nodes == 12  # node 11 has an edge; node 8 has none and no role left
    assert back.input_nodes.tolist() == [0, 1, 2] and back.output_nodes.tolist() == [5, 9, 11]


def test_csv_reads_with_pandas_and_networkx(wiring, tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(save_wiring(wiring, tmp_path / "w.csv"))
    assert list(df.columns) == [
        "source",
        "target",
        "edge_weight",
        "weight",
        "source_input_mask",
        "source_output_mask",
        "target_input_mask",
        "target_output_mask",
    ]
    assert df["source_input_mask"].dtype == bool and df["edge_weight"].tolist()[:2] == [0.5, -1.25]
    assert sorted(set(df.source[df.source_input_mask])) == [0, 1, 2]
    g = nx.from_pandas_edgelist(df, edge_attr=True, create_using=nx.DiGraph)
    assert g.edges[1, 3]["edge_weight"] == -1.25 and g.edges[1, 3]["weight"] == 1.25


def test_edge_list_reads_with_networkx(wiring, tmp_path):
    path = save_wiring(wiring, tmp_path / "w.edgelist")
    g = nx.read_edgelist(path, nodetype=int, create_using=nx.DiGraph)
    assert g.edges[1, 3] == {"edge_weight": -1.25, "weight": 1.25}
    assert path.read_text().splitlines()[:3] == [
        "# dnwgraph wiring: num_nodes=12 acyclic=true self_loops=false",
        "# input_nodes: 0 1 2 8",
        "# output_nodes: 5 8 9 11",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "0 1\n1 2\n",  # networkx.write_edgelist(g, data=False)
        "0 1 {}\n1 2 {}\n",  # data=True without attributes
        "0,1\n1,2\n",  # commas
        "# a comment\n0 1  # trailing\n\n1\t2\n",  # tabs, comments, blank lines
    ],
)
def test_plain_edge_lists_read(tmp_path, text):
    for ext in (".txt", ".edgelist"):
        path = tmp_path / f"e{ext}"
        path.write_text(text)
        w = Wiring.from_file(path)
        assert w.edge_index.tolist() == [[0, 1], [1, 2]] and w.edge_weight is None


@pytest.mark.parametrize(
    "text, weight",
    [
        ("0 1 0.5\n1 2 -2\n", [0.5, -2.0]),
        ("0,1,0.5\n1,2,-2\n", [0.5, -2.0]),
        ("0 1 {'weight': 0.5}\n1 2 {'weight': -2.0}\n", [0.5, -2.0]),
        (
            "0 1 {'weight': 0.5, 'edge_weight': -0.5}\n1 2 {'weight': 2, 'edge_weight': 2}\n",
            [-0.5, 2.0],
        ),
    ],
)
def test_weighted_edge_lists_read(tmp_path, text, weight):
    path = tmp_path / "e.txt"
    path.write_text(text)
    assert Wiring.from_file(path).edge_weight.tolist() == weight


def test_networkx_write_edgelist_reads_back(tmp_path):
    g = nx.DiGraph()
    g.add_edge(0, 2, weight=0.5)
    g.add_edge(1, 2, weight=-1.0)
    for data, expected in ((True, [0.5, -1.0]), (["weight"], [0.5, -1.0]), (False, None)):
        nx.write_edgelist(g, tmp_path / "g.edgelist", data=data)
        w = Wiring.from_file(tmp_path / "g.edgelist")
        assert w.edge_index.tolist() == [[0, 1], [2, 2]]
        assert (None if w.edge_weight is None else w.edge_weight.tolist()) == expected


def test_graph_files_keep_integer_ids_with_gaps(tmp_path):
    """GraphML ids were renumbered (0, 5, 10 became 0, 1, 2) although the docs said kept."""
    g = nx.DiGraph([(0, 5), (5, 10)])
    for ext, write in ((".graphml", nx.write_graphml), (".gexf", nx.write_gexf)):
        write(g, tmp_path / f"g{ext}")
        w = Wiring.from_file(tmp_path / f"g{ext}")
        assert w.edge_index.tolist() == [[0, 5], [5, 10]] and w.num_nodes == 11
    (tmp_path / "g.json").write_text(json.dumps(nx.node_link_data(g, edges="edges")))
    assert Wiring.from_file(tmp_path / "g.json").edge_index.tolist() == [[0, 5], [5, 10]]
    legacy = nx.node_link_data(g, edges="links")
    (tmp_path / "l.json").write_text(json.dumps(legacy))
    assert Wiring.from_file(tmp_path / "l.json").num_nodes == 11


def test_graph_files_with_names_are_numbered_in_sorted_order(tmp_path):
    nx.write_graphml(nx.DiGraph([("b", "c"), ("a", "c")]), tmp_path / "g.graphml")
    w = Wiring.from_file(tmp_path / "g.graphml")
    assert w.edge_index.tolist() == [[1, 0], [2, 2]]


def test_keyword_arguments_win_over_the_file(wiring, tmp_path):
    path = save_wiring(wiring, tmp_path / "w.json")
    w = Wiring.from_file(path, input_nodes=[0], edge_weight=torch.ones(9), num_nodes=13)
    assert w.input_nodes.tolist() == [0] and w.edge_weight.tolist() == [1.0] * 9
    assert w.num_nodes == 13 and w.output_nodes.tolist() == [5, 8, 9, 11]
    with pytest.raises(DNWGraphError, match=r"'num_nodes' must be at least the 12 nodes"):
        Wiring.from_file(path, num_nodes=5)


# -- hostile files ------------------------------------------------------------------------------


def _raises(tmp_path, name, content, match):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(DNWGraphError, match=match) as info:
        Wiring.from_file(path)
    assert "\n" not in str(info.value) and str(info.value).startswith(str(path))


@pytest.mark.parametrize(
    "text, match",
    [
        ("source,target\n0,1\n1,x\n", r"line 3: node id 'x' is not a plain integer"),
        ("0,1\n2\n", r"line 2: expected two integer node ids 'source,target' \(got '2'\)"),
        ("from,to\n0,1\n", r"line 1: unexpected column 'from'"),
        ("source,target,color\n0,1,red\n", r"line 1: unexpected column 'color'"),
        ("0,1,0.5,7\n", r"line 1: unexpected columns: .*\(got 4 columns"),
        ("source,target,source\n0,1,0\n", r"names the column 'source' twice"),
        ("source,target\n", "no edges found"),
        ("", "no edges found"),
        ("source,target\n0,1\n1,0\n", "cycle through node 0|"),
        ("source,target,weight\n0,1,heavy\n", r"line 2: 'weight' must be a number \(got 'heavy'\)"),
        ("source,target,weight\n0,1,nan\n", r"line 2: 'weight' must be finite"),
        ("source,target\n0,1,2\n", r"line 2: expected 2 columns as the header"),
        ("source,target\n01,1\n", r"node id '01' is not a plain integer"),
        ("source,target\n+1,2\n", r"node id '\+1' is not a plain integer"),
        ("source,target\n1_0,2\n", r"node id '1_0' is not a plain integer"),
        ("source,target\n0,99999999999999999999\n", r"node id 99999999999999999999 is too large"),
        ("source,target\n-1,2\n", r"line 2: node id -1 is negative"),
        ("source;target\n0;1\n", "separated by semicolons"),
        ("0 1\n1 2\n", "separated by spaces"),
        ("source,target,source_input_mask\n0,1,true\n", "come together"),
        (
            "source,target,source_input_mask,target_input_mask\n0,1,yes,false\n",
            r"'source_input_mask' must be true or false \(got 'yes'\)",
        ),
        (
            "source,target,source_input_mask,target_input_mask\n0,1,true,false\n1,2,true,false\n",
            r"line 3: node 1 has input_mask=true but false on line 2",
        ),
        ('source,target\n"0\n', "not a CSV edge list|expected two integer"),
    ],
)
def test_malformed_csv(tmp_path, text, match):
    if "cycle" in match:  # a cycle is not an error for a file: it reads as a cyclic wiring
        path = tmp_path / "c.csv"
        path.write_text(text)
        assert not Wiring.from_file(path).acyclic
        return
    _raises(tmp_path, "bad.csv", text, match)


@pytest.mark.parametrize(
    "text, match",
    [
        ("0 1 2 3\n", r"line 1: unexpected columns"),
        (
            "0 1 0.5\n1 2\n",
            r"line 2: whitespace and no weight, but line 1 has whitespace and a weight",
        ),
        ("0 1\n1,2\n", r"line 2: commas and no weight, but line 1 has whitespace"),
        ("0 1 {'weight': 0.5, 'weight': 1}\n", r"the attribute 'weight' is given twice"),
        ("0 1 {'weight': [1, [2]]}\n", r"attribute 'weight' must be a number, a string or a bool"),
        ("0 1 {'weight': __import__('os')}\n", r"must be a number, a string or a bool"),
        ("0 1 {'weight': 'x'}\n", r"edge \(0, 1\): 'weight' must be a number \(got 'x'\)"),
        ("0 1 {'weight': 1}\n1 2 {}\n", r"edge \(1, 2\) has no 'weight' while other edges"),
        ("0 1 {" + "(" * 200000 + "\n", r"attribute dict is not a Python dict literal"),
        ("0 1 {'a': 1\n", r"attribute dict is not a Python dict literal"),
        ("0 x\n", r"node id 'x' is not a plain integer"),
        ("# dnwgraph wiring: num_nodes=2 acyclic=maybe\n0 1\n", r"'acyclic' must be true or false"),
        ("# dnwgraph wiring: num_nodes=2 num_nodes=3\n0 1\n", "each once"),
        (
            "# input_nodes: 0 7\n# dnwgraph wiring: num_nodes=2\n0 1\n",
            r"'input_nodes' holds node 7 outside \[0, 2\)",
        ),
        ("# only comments\n", "no edges found"),
        ("0 0\n", r"self loop|"),
    ],
)
def test_malformed_edge_list(tmp_path, text, match):
    if match == r"self loop|":  # a self loop reads as a cyclic wiring with self loops
        path = tmp_path / "s.txt"
        path.write_text(text)
        assert Wiring.from_file(path).self_loops
        return
    _raises(tmp_path, "bad.txt", text, match)


NODE_LINK = (
    '{"directed": true, "nodes": [{"id": 0}, {"id": 1}], "edges": [{"source": 0, "target": 1}]}'
)


@pytest.mark.parametrize(
    "text, match",
    [
        ("{not json", "not valid JSON"),
        ("[[0, 1]]", "expected a JSON object"),
        ('{"edges": [[0, 1]]}', r"expected networkx node-link JSON.*\['edges'\]"),
        ('{"nodes": [], "edges": [], "links": []}', "expected networkx node-link JSON"),
        ('{"nodes": [], "edges": [], "extra": 1}', "expected networkx node-link JSON"),
        ('{"directed": false, "nodes": [{"id": 0}], "edges": []}', "'directed' must be true"),
        ('{"nodes": [{"id": 0}, {"id": 0}], "edges": []}', "node id 0 is listed twice"),
        ('{"nodes": [{"id": 0}], "nodes": [], "edges": []}', "the key 'nodes' appears twice"),
        ('{"nodes": [{"id": 0}], "edges": [{"source": 0, "target": 4}]}', "naming listed nodes"),
        ('{"nodes": [{"id": 1.5}], "edges": []}', r"a node id is an integer or a name \(got 1.5\)"),
        ('{"nodes": [{"id": true}], "edges": []}', r"a node id is an integer or a name"),
        (
            '{"nodes": [{"id": 0}, {"id": "a"}], "edges": [{"source": 0, "target": "a"}]}',
            r"all integers .* or all names",
        ),
        (
            '{"nodes": [{"id": 0}, {"id": "0"}], "edges": [{"source": 0, "target": "0"}]}',
            r"node id 0 appears twice",
        ),
        (
            '{"nodes": [{"id": 0}, {"id": 1}], "edges": [{"source": 0, "target": 1, '
            '"weight": "x"}]}',
            r"'weight' must be a number \(got 'x'\)",
        ),
        (
            '{"nodes": [{"id": 0, "input_mask": "yes"}, {"id": 1}], "edges": [{"source": 0, '
            '"target": 1}]}',
            r"node 0: 'input_mask' must be true or false \(got 'yes'\)",
        ),
        (
            '{"graph": {"acyclic": 1}, "nodes": [{"id": 0}, {"id": 1}], "edges": [{"source": 0, '
            '"target": 1}]}',
            r"graph attribute 'acyclic' must be true or false \(got 1\)",
        ),
        (
            '{"nodes": [{"id": 0, "x": {"y": 1}}], "edges": []}',
            "must be a number, a string or a bool",
        ),
        (
            '{"nodes": [{"id": 0}, {"id": 99999999999}], "edges": [{"source": 0, '
            '"target": 99999999999}]}',
            "node id 99999999999 is too large",
        ),
        (
            '{"nodes": [{"id": 0}], "edges": [{"source": 0, "target": ' + "1" * 5000 + "}]}",
            "not valid JSON",
        ),
        ("[" * 100000 + "]" * 100000, "nested deeper than 64 levels"),
        ('{"nodes": [{"id": 0}], "edges": []}', "no edges found"),
    ],
)
def test_malformed_json(tmp_path, text, match):
    _raises(tmp_path, "bad.json", text, match)


def test_minimal_hand_written_node_link_json(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(NODE_LINK.replace('"directed": true, ', ""))
    assert Wiring.from_file(path).edge_index.tolist() == [[0], [1]]


GRAPHML = (
    '<?xml version="1.0"?><graphml xmlns="http://graphml.graphdrawing.org/xmlns">{keys}'
    '<graph edgedefault="{kind}">{body}</graph></graphml>'
)


@pytest.mark.parametrize(
    "keys, kind, body, match",
    [
        (
            "",
            "directed",
            '<node id="0"/><node id="0"/><node id="1"/><edge source="0" target="1"/>',
            r"<node id='0'> appears twice",
        ),
        (
            "",
            "directed",
            '<node id="0"/><node id="1"/><edge source="0" target="1"/>'
            '<edge source="0" target="1"/>',
            r"duplicate edge \(0, 1\)",
        ),
        (
            '<key id="d0" for="node" attr.name="input_mask" attr.type="boolean"/>'
            '<key id="d0" for="node" attr.name="output_mask" attr.type="boolean"/>',
            "directed",
            '<node id="0"/><node id="1"/><edge source="0" target="1"/>',
            r"<key id='d0'> appears twice",
        ),
        (
            '<key id="d0" for="edge" attr.name="weight" attr.type="string"/>',
            "directed",
            '<node id="0"/><node id="1"/><edge source="0" target="1"><data key="d0">heavy</data>'
            "</edge>",
            r"'weight' must be a number \(got 'heavy'\)",
        ),
        (
            '<key id="d0" for="edge" attr.name="weight" attr.type="double"/>',
            "directed",
            '<node id="0"/><node id="1"/><edge source="0" target="1"><data key="d0">1</data>'
            '<data key="d0">2</data></edge>',
            r"<data key='d0'> appears twice",
        ),
        (
            "",
            "undirected",
            '<node id="0"/><node id="1"/><edge source="0" target="1"/>',
            "must be a directed graph",
        ),
        (
            "",
            "directed",
            '<node id="0"/><node id="a"/><edge source="0" target="a"/>',
            "all integers .* or all names",
        ),
        (
            "",
            "directed",
            '<node id="007"/><node id="1"/><edge source="007" target="1"/>',
            r"got '007' beside the integer id",
        ),
        (
            "",
            "directed",
            '<node id="0"/><node id="123456789012"/><edge source="0" target="123456789012"/>',
            "node id 123456789012 is too large",
        ),
        ("", "directed", '<node id="0"/>', "no edges found"),
        ("", "directed", '<node id="0"><node', "malformed GraphML: not XML"),
    ],
)
def test_malformed_graphml(tmp_path, keys, kind, body, match):
    _raises(tmp_path, "bad.graphml", GRAPHML.format(keys=keys, kind=kind, body=body), match)


@pytest.mark.parametrize("ext", FORMATS)
def test_binary_and_empty_files_are_named(tmp_path, ext):
    binary = b"PK\x03\x04\x80\x81\xfe\xff" * 8
    match = (
        r"not a UTF-8 text file \(byte 0x80|malformed"
        if ext in (".gexf", ".graphml")
        else (r"not a UTF-8 text file \(byte 0x80")
    )
    _raises(tmp_path, f"model{ext}", binary, match)
    _raises(tmp_path, f"empty{ext}", "", "no edges found|not valid JSON|malformed")


def test_special_files_are_refused(tmp_path):
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    with pytest.raises(
        DNWGraphError, match=r"folder\.csv: expected a wiring file \(got a folder\)"
    ):
        Wiring.from_file(folder)
    if hasattr(os, "mkfifo"):  # reading a FIFO would block forever
        fifo = tmp_path / "pipe.txt"
        os.mkfifo(fifo)
        with pytest.raises(
            DNWGraphError, match=r"pipe\.txt: expected a wiring file \(got a FIFO\)"
        ):
            Wiring.from_file(fifo)
    if os.path.exists("/dev/null"):
        with pytest.raises(DNWGraphError, match="unknown extension"):
            Wiring.from_file("/dev/null")
        link = tmp_path / "null.csv"
        link.symlink_to("/dev/null")
        with pytest.raises(DNWGraphError, match=r"got a character device"):
            Wiring.from_file(link)


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        Wiring.from_file(tmp_path / "nope.csv")
    with pytest.raises(
        DNWGraphError,
        match=r"unknown extension '\.dot' \(supported: \.csv, \.edgelist, \.gexf, \.graphml, "
        r"\.json, \.txt\)",
    ):
        Wiring.from_file(tmp_path / "w.dot")


def test_csv_with_a_byte_order_mark_reads(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffsource,target\r\n0,1\r\n1,2\r\n".encode())
    assert Wiring.from_file(path).edge_index.tolist() == [[0, 1], [1, 2]]


def test_writers_write_a_data_of_several_modules(tmp_path):
    """A model's export (module names, selected flags) writes and reads in every format."""
    from dnwgraph import WiringConv

    conv = WiringConv(Wiring([(0, 2), (1, 2), (0, 3), (2, 3)]), ratio=2)
    data = to_data(conv, all_candidates=True)
    for ext in FORMATS:
        back = Wiring.from_file(save_wiring(conv, tmp_path / f"a{ext}", all_candidates=True))
        assert back.edge_index.tolist() == data.edge_index.tolist()
        assert back.edge_weight.tolist() == data.edge_weight.tolist()
    rows = (tmp_path / "a.csv").read_text().splitlines()
    assert rows[0].endswith(",selected") and sum(r.endswith("true") for r in rows[1:]) == 2


# -- a new format, from outside the package -----------------------------------------------------


def test_a_new_format_from_the_example_reads_and_writes(tmp_path):
    """``examples/tsv_format.py`` adds ``.tsv`` with public names only (in a fresh process, so
    that this session's registry stays as it is)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = (
        "import runpy, sys, pathlib\n"
        f"ns = runpy.run_path({str(root / 'examples' / 'tsv_format.py')!r})\n"
        "ns['main']()\n"
        "from dnwgraph import Wiring\n"
        "bad = pathlib.Path(sys.argv[1]) / 'bad.tsv'\n"
        "bad.write_text('0 1\\n')\n"
        "try:\n"
        "    Wiring.from_file(bad)\n"
        "except ValueError as err:\n"
        "    print(err)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.splitlines()
    assert out[0] == "['# inputs: 0 1', '0\\t2\\t0.5']"
    assert out[1] == (
        "Wiring(num_nodes=4, num_edges=3, inputs=2, outputs=1, acyclic=True, weighted=True) "
        "[0.5, -1.0, 2.0] [0, 1]"
    )
    assert out[2] == f"{tmp_path / 'bad.tsv'}: line 1: expected 'source<TAB>target<TAB>weight'"


def test_register_format_checks_its_arguments():
    from dnwgraph.graph import register_format

    with pytest.raises(DNWGraphError, match=r"starts with a dot, like '\.tsv' \(got 'tsv'\)"):
        register_format("tsv", object())
    with pytest.raises(TypeError, match=r"needs methods read\(path\) and write\(data, path\)"):
        register_format(".tsv", object())
    with pytest.raises(DNWGraphError, match=r"wiring file format '\.csv' is already registered"):
        register_format(".csv", CSVLike())


class CSVLike:
    def read(self, path):
        raise AssertionError("never called")

    def write(self, data, path):
        raise AssertionError("never called")


def test_unknown_node_role_is_named(tmp_path):
    g = nx.DiGraph([(0, 1), (1, 2)])
    nx.set_node_attributes(g, {0: "input", 1: "banana", 2: "output"}, "role")
    path = tmp_path / "w.graphml"
    nx.write_graphml(g, path)
    with pytest.raises(ValueError, match=r"w\.graphml: node '1' has role 'banana'; a role is one"):
        Wiring.from_file(path)
    g.nodes[1]["role"] = "hidden"
    nx.write_graphml(g, path)
    assert Wiring.from_file(path).input_nodes.tolist() == [0]


@pytest.mark.parametrize(
    "name, text",
    [
        ("c.txt", "# dnwgraph wiring: num_nodes=3 acyclic=true\n0 1\n1 2\n2 0\n"),
        ("c.csv", "source,target\n0,1\n1,2\n2,0\n"),
    ],
)
def test_a_cycle_in_a_file_declared_acyclic_names_the_file(tmp_path, name, text):
    """The cycle error keeps its type and its node and cycle, and starts with the file, as every
    other error of a file does."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(CycleError, match=r"cycle through node 0 \(0 -> 1 -> 2 -> 0\)") as info:
        Wiring.from_file(path, acyclic=True) if name.endswith(".csv") else Wiring.from_file(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)
    assert (info.value.node, info.value.cycle) == (0, [0, 1, 2, 0])


GRAPHML_IDS = (
    '<graphml xmlns="http://graphml.graphdrawing.org/xmlns"><graph edgedefault="directed">'
    '<node id="{0}"/><node id="{1}"/><node id="{2}"/>'
    '<edge source="{0}" target="{1}"/><edge source="{1}" target="{2}"/></graph></graphml>'
)


@pytest.mark.parametrize(
    "name, text",
    [
        ("w.csv", "0,1.0\n1.0,10.00\n"),
        ("h.csv", "source,target\n0.0,1\n1,10.0\n"),
        ("w.txt", "0 1.0\n1.0 10\n"),
        ("w.graphml", GRAPHML_IDS.format("0.0", "1.0", "10.0")),
        (
            "w.json",
            '{"nodes": [{"id": 0.0}, {"id": 1.0}, {"id": 10.0}], '
            '"edges": [{"source": 0.0, "target": 1.0}, {"source": 1, "target": 10.0}]}',
        ),
    ],
)
def test_integer_ids_written_as_floats_keep_their_value(tmp_path, name, text):
    """pandas writes an integer column holding a NaN as 1.0: node 10.0 is node 10. Before,
    CSV and edge lists refused '1.0' (a headerless first row '1.0,...' as an unknown column),
    JSON refused 0.0, and GraphML numbered '10.0' as the name sorted second."""
    path = tmp_path / name
    path.write_text(text)
    w = Wiring.from_file(path)
    assert w.edge_index.tolist() == [[0, 1], [1, 10]] and w.num_nodes == 11


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("w.csv", "0,1\n1.5,2\n", r"line 2: node id '1.5' is not a plain integer"),
        ("w.csv", "1.5,2\n", r"line 1: node id '1.5' is not a plain integer"),
        ("w.csv", "+1,2\n", r"line 1: node id '\+1' is not a plain integer"),
        ("w.csv", "0,1\n2,-3\n", r"line 2: node id -3 is negative: ids are positions 0..N-1"),
        ("w.txt", "# c\n-1 2\n", r"line 2: node id -1 is negative: ids are positions 0..N-1"),
        ("w.graphml", GRAPHML_IDS.format("-1", "0", "1"), r"node ids must be >= 0 \(got '-1'\)"),
        ("w.graphml", GRAPHML_IDS.format("0", "1.5", "2"), r"all integers .* or all names"),
    ],
)
def test_ids_that_are_not_node_positions_name_the_line(tmp_path, name, text, match):
    _raises(tmp_path, name, text, match)


def _node_link(ids, edges, e_ids=None):
    return json.dumps(
        {
            "nodes": [{"id": v} for v in ids],
            "edges": [
                {"source": u, "target": v, **({} if e_ids is None else {"e_id": e_ids[i]})}
                for i, (u, v) in enumerate(edges)
            ],
        }
    )


@pytest.mark.parametrize(
    "name, text, top, named",
    [
        ("w.csv", "source,target\n0,1\n1,60000000\n", 60000000, 3),
        ("w.csv", "0,1\n1,2\n2,1004\n", 1004, 4),  # 1,001 unnamed
        ("w.txt", "0 1\n1 60000000\n", 60000000, 3),
        ("w.txt", "# input_nodes: 0 5000\n0 1\n1 2\n", 5000, 4),
        ("w.json", _node_link([0, 1, 60000000], [(0, 1), (1, 60000000)]), 60000000, 3),
        ("w.graphml", GRAPHML_IDS.format("0", "1", "60000000"), 60000000, 3),
    ],
)
def test_ids_far_beyond_the_nodes_a_file_names_are_refused(tmp_path, name, text, top, named):
    """Before: a 2-line edge list naming node 60,000,000 read as a 60M-node wiring (every
    missing id an isolated input and output), and `dnwgraph export` then exhausted memory."""
    unnamed = top + 1 - named
    match = (
        rf"node id {top} makes {top + 1} nodes, but the file names only {named} of them: ids "
        rf"are positions 0..N-1, so {unnamed} nodes would be ones it never names \(relabel "
        rf"the nodes 0..{named - 1}"
    )
    _raises(tmp_path, name, text, match)


@pytest.mark.parametrize(
    "name, text",
    [
        ("w.csv", "0,1\n1,2\n2,1002\n"),  # 999 unnamed: the limit is 1,000
        ("w.txt", "0 1\n1 2\n2 1002\n"),
        ("w.json", _node_link([0, 1, 2, 1002], [(0, 1), (1, 2), (2, 1002)])),
        ("w.graphml", GRAPHML_IDS.format("0", "1", "1002")),
    ],
)
def test_gaps_up_to_the_limit_are_nodes_without_edges(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    w = Wiring.from_file(path)
    assert w.num_nodes == 1003
    assert w.input_nodes.numel() == 1003 - w.num_edges  # 999 isolated nodes and node 0


@pytest.mark.parametrize("ext", [".csv", ".txt", ".json", ".graphml"])
def test_num_nodes_reads_a_wiring_whose_ids_are_sparse(tmp_path, ext):
    """The limit is for files that do not say how many nodes there are: the caller's
    ``num_nodes`` says it (a CSV stores edges only, so a wiring with many isolated nodes
    comes back with it)."""
    w = Wiring([(0, 1), (1, 2999)], num_nodes=3000)
    path = dnwgraph.save_wiring(w, tmp_path / f"w{ext}")
    if ext == ".txt":  # its header declares the count: drop it to test the inference
        lines = path.read_text().splitlines()
        path.write_text("\n".join(line for line in lines if not line.startswith("#")))
    if ext in (".csv", ".txt"):
        with pytest.raises(DNWGraphError, match=r"or declare the count: num_nodes=N in Python"):
            Wiring.from_file(path)
    back = Wiring.from_file(path, num_nodes=3000)
    assert back.num_nodes == 3000 and back.edge_index.tolist() == w.edge_index.tolist()


def test_a_declared_node_count_is_kept_however_sparse(tmp_path):
    """The edge list's header says how many nodes there are: no limit applies."""
    path = tmp_path / "w.txt"
    path.write_text("# dnwgraph wiring: num_nodes=5000\n0 1\n1 2\n")
    assert Wiring.from_file(path).num_nodes == 5000


def test_more_named_than_unnamed_nodes_has_no_limit(tmp_path):
    """A large wiring with a few thousand ids missing reads (the rule is about most nodes)."""
    edges = [(v, v + 1) for v in range(0, 6000, 2)]  # ids 0..6000 even/odd pairs, gaps of none
    edges += [(10000, 10001)]
    path = tmp_path / "w.csv"
    path.write_text("".join(f"{u},{v}\n" for u, v in edges))
    w = Wiring.from_file(path)
    assert w.num_nodes == 10002 and w.num_edges == len(edges)


@pytest.mark.parametrize("zero", ["-0", "-0.0"])
def test_minus_zero_is_node_zero(tmp_path, zero):
    """Before: '-0' (a float column's '-0.0') was refused as negative."""
    for name, text in [("w.csv", f"{zero},1\n1,2\n"), ("w.txt", f"{zero} 1\n1 2\n")]:
        path = tmp_path / name
        path.write_text(text)
        assert Wiring.from_file(path).edge_index.tolist() == [[0, 1], [1, 2]]


def test_two_edges_with_one_e_id_are_refused(tmp_path):
    """Before: the order of two edges sharing an e_id was whatever the sort left."""
    text = _node_link([0, 1, 2], [(0, 1), (1, 2)], e_ids=[0, 0])
    _raises(tmp_path, "w.json", text, r"edges \(0, 1\) and \(1, 2\) have the same 'e_id' 0")


def test_e_id_still_orders_the_edges(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(_node_link([0, 1, 2], [(0, 1), (1, 2)], e_ids=[1, 0]))
    assert Wiring.from_file(path).edge_index.tolist() == [[1, 0], [2, 1]]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_nan_in_json_names_its_line(tmp_path, constant):
    text = '{"nodes": [{"id": 0}, {"id": 1}],\n "edges": [{"source": 0, "target": 1, "weight": X}]}'
    column = text.splitlines()[1].index("X") + 1
    match = rf"line 2 column {column}: {constant} is not a JSON number"
    _raises(tmp_path, "w.json", text.replace("X", constant), match)


@pytest.mark.parametrize("ext", [".csv", ".txt", ".json", ".graphml"])
def test_windows_line_endings_and_a_byte_order_mark_read(wiring, tmp_path, ext):
    path = tmp_path / f"w{ext}"
    save_wiring(wiring, path)
    text = path.read_text(encoding="utf-8").replace("\n", "\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    back = Wiring.from_file(path, num_nodes=wiring.num_nodes)
    assert back.edge_index.tolist() == wiring.edge_index.tolist()
    assert back.edge_weight.tolist() == wiring.edge_weight.tolist()


def test_a_graphml_id_of_thousands_of_digits_is_one_line(tmp_path):
    """Before: int() of a 5000-digit id raised a bare ValueError (a traceback in the CLI)."""
    _raises(
        tmp_path,
        "w.graphml",
        GRAPHML_IDS.format("0", "1" * 5000, "2"),
        r"node id 1+\.\.\. is too large",
    )


GRAPHML_EDGE_IDS = (
    '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">'
    '<key id="w" for="edge" attr.name="weight" attr.type="double"/>'
    '<graph edgedefault="directed"><node id="0"/><node id="1"/><node id="2"/>'
    '<edge id="e0" source="0" target="1"><data key="w">1.0</data></edge>'
    '<edge id="{0}" source="0" target="1"><data key="w">-5.0</data></edge>'
    '<edge id="e2" source="1" target="2"><data key="w">2.0</data></edge></graph></graphml>'
)
GEXF_EDGE_IDS = (
    '<gexf xmlns="http://www.gexf.net/1.2draft" version="1.2">'
    '<graph defaultedgetype="directed"><nodes><node id="0"/><node id="1"/><node id="2"/></nodes>'
    '<edges><edge id="0" source="0" target="1" weight="1.0"/>'
    '<edge id="{0}" source="0" target="1" weight="7.0"/>'
    '<edge id="2" source="1" target="2" weight="2.0"/></edges></graph></gexf>'
)


@pytest.mark.parametrize("name, text", [("w.graphml", GRAPHML_EDGE_IDS), ("w.gexf", GEXF_EDGE_IDS)])
def test_two_edges_with_one_id_are_refused_not_merged(tmp_path, name, text):
    """Before: networkx took the edge id as its multigraph key, and the second edge replaced
    the first (2 edges read out of 3, a weight lost); without the ids, the duplicate edge is
    refused as such."""
    twice = "e0" if name.endswith("graphml") else "0"
    _raises(tmp_path, name, text.format(twice), rf"<edge id='{twice}'> appears twice")
    path = tmp_path / f"ok{name}"
    path.write_text(text.format("e1" if name.endswith("graphml") else "1"))
    with pytest.raises(DNWGraphError, match=r"duplicate edge \(0, 1\)"):
        Wiring.from_file(path)


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("w.txt", "0 1 {'weight': 1%s}\n" % ("0" * 400), r"an integer of 401 digits"),
        (
            "w.json",
            _node_link([0, 1, 2], [(0, 1), (1, 2)], e_ids=[1, 10**400]),
            r"an integer of 401 digits",
        ),
        (
            "w.csv",
            "source,target,weight\n0,1,1_000\n",
            r"'weight' must be a number \(got '1_000'\)",
        ),
    ],
)
def test_numbers_beyond_floats_or_with_underscores_are_one_line(tmp_path, name, text, match):
    """Before: OverflowError: int too large to convert to float (a traceback in the CLI);
    '1_000' read as 1000 where node ids refuse '_'."""
    _raises(tmp_path, name, text, match)


def test_a_nan_e_id_is_refused(tmp_path):
    """Before: NaN never equals NaN, so two NaN e_ids passed and the sort left any order."""
    text = (
        '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">'
        '<key id="e" for="edge" attr.name="e_id" attr.type="double"/>'
        '<graph edgedefault="directed"><node id="0"/><node id="1"/><node id="2"/>'
        '<edge source="0" target="1"><data key="e">NaN</data></edge>'
        '<edge source="1" target="2"><data key="e">NaN</data></edge></graph></graphml>'
    )
    _raises(tmp_path, "w.graphml", text, r"'e_id' must be a finite number")
