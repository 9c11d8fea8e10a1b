from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dnwgraph import CycleError, Wiring, to_data, to_networkx

# 0 -> 2, 1 -> 2, 2 -> 3, 0 -> 3: levels [[0, 1], [2], [3]]
EDGES = [(0, 2), (1, 2), (2, 3), (0, 3)]


def test_four_node_dag_structure():
    w = Wiring(EDGES)
    assert w.num_nodes == 4 and w.num_edges == 4
    assert w.edge_index.dtype == torch.long and w.edge_index.device.type == "cpu"
    assert w.edge_index.tolist() == [[0, 1, 2, 0], [2, 2, 3, 3]]  # caller's order kept
    assert [lvl.tolist() for lvl in w.levels()] == [[0, 1], [2], [3]]
    assert w.node_level().tolist() == [0, 0, 1, 2]
    assert w.num_levels == 3
    assert w.levels() is w.levels()  # cached
    assert w.input_nodes.tolist() == [0, 1]
    assert w.output_nodes.tolist() == [3]
    assert w.hidden_nodes.tolist() == [2]
    assert w.in_degree().tolist() == [0, 0, 2, 2]
    assert w.out_degree().tolist() == [2, 1, 1, 0]
    assert repr(w) == "Wiring(num_nodes=4, num_edges=4, inputs=2, outputs=1, acyclic=True)"


def test_accepts_tensor_numpy_and_pairs_alike():
    ref = Wiring(EDGES).edge_index
    t = torch.tensor(EDGES).t()
    for src in (t, t.int(), t.numpy(), np.asarray(EDGES, dtype=np.int32).T, tuple(EDGES)):
        assert torch.equal(Wiring(src).edge_index, ref)
    assert torch.equal(Wiring.from_edge_list(EDGES).edge_index, ref)


def test_isolated_node_is_input_and_output():
    w = Wiring(EDGES, num_nodes=5)
    assert w.input_nodes.tolist() == [0, 1, 4]
    assert w.output_nodes.tolist() == [3, 4]
    assert w.levels()[0].tolist() == [0, 1, 4]


def test_explicit_input_output_nodes_sorted():
    w = Wiring(EDGES, input_nodes=torch.tensor([1, 0]), output_nodes=[3, 2])
    assert w.input_nodes.tolist() == [0, 1] and w.output_nodes.tolist() == [2, 3]
    assert w.hidden_nodes.tolist() == []


def test_cyclic_wiring_defaults_and_levels_error():
    w = Wiring([(0, 1), (1, 0), (1, 1)], acyclic=False, self_loops=True)
    assert w.input_nodes.tolist() == [0, 1] and w.output_nodes.tolist() == [0, 1]
    with pytest.raises(ValueError, match="acyclic=False"):
        w.levels()
    with pytest.raises(ValueError, match="acyclic=False"):
        w.node_level()


def test_data_masks():
    d = to_data(Wiring(EDGES))
    assert d.num_nodes == 4
    assert torch.equal(d.edge_index, Wiring(EDGES).edge_index)
    assert d.input_mask.tolist() == [True, True, False, False]
    assert d.output_mask.tolist() == [False, False, False, True]


def test_to_device_keeps_everything():
    w = Wiring(EDGES).to("cpu")
    assert [lvl.tolist() for lvl in w.levels()] == [[0, 1], [2], [3]]
    assert w.input_nodes.tolist() == [0, 1] and w.edge_index.device.type == "cpu"


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "edge_index, match",
    [
        (
            torch.zeros(3, 4, dtype=torch.long),
            r"'edge_index' must have shape \[2, E\] \(got \(3, 4\)\)",
        ),
        (torch.zeros(4, 2, dtype=torch.long), r"shape \[2, E\] \(got \(4, 2\)\)"),
        (torch.zeros(8, dtype=torch.long), r"shape \[2, E\] \(got \(8,\)\)"),
        (torch.tensor([[0.0, 1.0], [1.0, 2.0]]), "integer node ids.*torch.float32"),
        (np.array([[0.0], [1.0]]), "integer node ids.*float64"),
        (torch.tensor([[True], [False]]), "integer node ids.*torch.bool"),
        ([(0, 1), (1, 2, 3)], r"pairs.*\(1, 2, 3\).*position 1"),
        ([(0, 1), 5], "pairs.*5 at position 1"),
        ([], "at least one candidate edge"),
        (torch.zeros(2, 0, dtype=torch.long), "at least one candidate edge"),
    ],
)
def test_bad_edge_index(edge_index, match):
    with pytest.raises(ValueError, match=match):
        Wiring(edge_index)


def test_bad_edge_index_type():
    with pytest.raises(TypeError, match="'edge_index' must be"):
        Wiring("0,1")


def test_node_id_out_of_range():
    with pytest.raises(ValueError, match=r"node id 4 .*valid range \[0, 4\)"):
        Wiring([(0, 1), (1, 4)], num_nodes=4)
    with pytest.raises(ValueError, match=r"node id -1 .*valid range \[0, 3\)"):
        Wiring([(0, 1), (-1, 2)], num_nodes=3)
    with pytest.raises(ValueError, match="'num_nodes' must be positive"):
        Wiring([(0, 1)], num_nodes=0)
    with pytest.raises(TypeError, match="'num_nodes' must be an int"):
        Wiring([(0, 1)], num_nodes=2.0)


def test_duplicate_edge_named():
    with pytest.raises(ValueError, match=r"duplicate edge \(1, 2\) at positions 1 and 3"):
        Wiring([(0, 1), (1, 2), (0, 2), (1, 2)])


def test_self_loop_named():
    with pytest.raises(ValueError, match="self loop at node 2"):
        Wiring([(0, 1), (2, 2)], acyclic=False)
    # allowed self loops are still cycles in a static wiring
    with pytest.raises(CycleError, match=r"node 2 \(2 -> 2\)"):
        Wiring([(0, 2), (2, 2)], self_loops=True)


def test_cycle_error_names_cycle():
    with pytest.raises(CycleError, match=r"cycle through node 3 \(3 -> 5 -> 3\)") as info:
        Wiring([(0, 3), (3, 5), (5, 3), (5, 6)])
    assert info.value.node == 3 and info.value.cycle == [3, 5, 3]
    assert isinstance(info.value, ValueError)
    w = Wiring([(0, 3), (3, 5), (5, 3)], acyclic=False)
    assert w.num_edges == 3


def test_long_cycle_reached_from_a_tail():
    # node 0 feeds a 4-cycle 1 -> 2 -> 3 -> 4 -> 1, and 7 hangs off it
    edges = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 1), (4, 7)]
    with pytest.raises(CycleError, match=r"node 1 \(1 -> 2 -> 3 -> 4 -> 1\)"):
        Wiring(edges)


@pytest.mark.parametrize("name", ["input_nodes", "output_nodes"])
def test_bad_node_sets(name):
    with pytest.raises(ValueError, match=rf"'{name}' holds node id 9 .*\[0, 4\)"):
        Wiring(EDGES, **{name: [0, 9]})
    with pytest.raises(ValueError, match=rf"'{name}' lists node 1 more than once"):
        Wiring(EDGES, **{name: [1, 1]})
    with pytest.raises(ValueError, match=rf"'{name}' must name at least one node"):
        Wiring(EDGES, **{name: []})
    with pytest.raises(ValueError, match=rf"'{name}' must hold integer"):
        Wiring(EDGES, **{name: [0.5]})


# -- levels vs networkx ------------------------------------------------------------------------


@st.composite
def random_dags(draw):
    n = draw(st.integers(2, 25))
    perm = draw(st.permutations(range(n)))  # hide the topological order from the ids
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    chosen = draw(st.lists(st.sampled_from(pairs), min_size=1, max_size=60, unique=True))
    return n, [(perm[i], perm[j]) for i, j in chosen]


@settings(max_examples=50, deadline=None)
@given(random_dags())
def test_levels_equal_networkx(case):
    n, edges = case
    w = Wiring(edges, num_nodes=n)
    g = nx.DiGraph(edges)
    g.add_nodes_from(range(n))
    expected = [sorted(gen) for gen in nx.topological_generations(g)]
    assert [lvl.tolist() for lvl in w.levels()] == expected
    assert sum(lvl.numel() for lvl in w.levels()) == n


@pytest.mark.parametrize(("n", "e"), [(300, 400), (2000, 60000), (70000, 90000)])
def test_levels_of_large_dags_equal_networkx(n, e):
    # sparse levels (counted by sorting), dense ones (counted over all nodes), and more than
    # 2**16 nodes (another sort of the sources)
    rng = np.random.default_rng(n)
    perm = rng.permutation(n)
    a, b = rng.integers(0, n, (2, 2 * e))
    keep = a < b
    key = np.unique(a[keep] * n + b[keep])[:e]
    edges = np.stack([perm[key // n], perm[key % n]])
    w = Wiring(edges, num_nodes=n)
    g = nx.DiGraph(edges.T.tolist())
    g.add_nodes_from(range(n))
    expected = [sorted(gen) for gen in nx.topological_generations(g)]
    assert [lvl.tolist() for lvl in w.levels()] == expected


@settings(max_examples=30, deadline=None)
@given(random_dags(), st.data())
def test_back_edge_raises_cycle_error(case, data):
    n, edges = case
    u, v = data.draw(st.sampled_from(edges))
    with pytest.raises(CycleError) as info:
        Wiring(edges + [(v, u)], num_nodes=n)
    cyc = info.value.cycle
    g = nx.DiGraph(edges + [(v, u)])
    assert cyc[0] == cyc[-1]
    assert all(g.has_edge(a, b) for a, b in zip(cyc[:-1], cyc[1:], strict=True))


# -- networkx round trip -----------------------------------------------------------------------


def test_to_networkx_attributes():
    g = to_networkx(Wiring(EDGES, num_nodes=5))
    assert list(g.nodes) == [0, 1, 2, 3, 4]
    assert sorted(g.edges(data="e_id"), key=lambda e: e[2]) == [
        (u, v, i) for i, (u, v) in enumerate(EDGES)
    ]
    assert g.graph == {"acyclic": True, "self_loops": False, "num_modules": 1}
    assert [g.nodes[v]["role"] for v in g] == ["input", "input", "hidden", "output", "input"]
    assert g.nodes[4]["input_mask"] and g.nodes[4]["output_mask"]
    assert [g.nodes[v]["node_level"] for v in g] == [0, 0, 1, 2, 0]
    assert all("weight" not in d and "edge_weight" not in d for _, _, d in g.edges(data=True))


def test_networkx_round_trip():
    w = Wiring(EDGES, num_nodes=5, input_nodes=[0], output_nodes=[2, 3])
    back = Wiring.from_networkx(to_networkx(w))
    assert torch.equal(back.edge_index, w.edge_index) and back.num_nodes == 5
    assert back.input_nodes.tolist() == [0] and back.output_nodes.tolist() == [2, 3]
    assert back.edge_weight is None
    cyc = Wiring([(0, 1), (1, 0), (1, 1)], acyclic=False, self_loops=True, input_nodes=[1])
    back = Wiring.from_networkx(to_networkx(cyc))
    assert not back.acyclic and back.self_loops and back.input_nodes.tolist() == [1]
    assert "node_level" not in to_networkx(cyc).nodes[0]


def test_from_networkx_relabels():
    g = nx.DiGraph([("b", "c"), ("a", "c")])
    w = Wiring.from_networkx(g, output_nodes=["c"])
    assert w.edge_index.tolist() == [[1, 0], [2, 2]]  # sorted labels a, b, c -> 0, 1, 2
    assert w.output_nodes.tolist() == [2] and w.input_nodes.tolist() == [0, 1]
    # unorderable labels keep insertion order
    g = nx.DiGraph([(("x",), 1), (1, "z")])
    assert Wiring.from_networkx(g).edge_index.tolist() == [[0, 1], [1, 2]]


def test_from_networkx_reads_roles_and_detects_cycles():
    g = nx.DiGraph([(0, 1), (1, 2)])
    nx.set_node_attributes(g, {0: "input", 1: "output", 2: "output"}, "role")
    assert Wiring.from_networkx(g).output_nodes.tolist() == [1, 2]
    w = Wiring.from_networkx(nx.DiGraph([(0, 1), (1, 0)]))
    assert not w.acyclic and w.input_nodes.tolist() == [0, 1]
    with pytest.raises(CycleError):
        Wiring.from_networkx(nx.DiGraph([(0, 1), (1, 0)]), acyclic=True)


def test_from_networkx_errors():
    with pytest.raises(ValueError, match="must be a directed graph"):
        Wiring.from_networkx(nx.Graph([(0, 1)]))
    with pytest.raises(ValueError, match="'input_nodes' names node 'q'"):
        Wiring.from_networkx(nx.DiGraph([(0, 1)]), input_nodes=["q"])
    with pytest.raises(ValueError, match="no nodes"):
        Wiring.from_networkx(nx.DiGraph())


# -- PyG graphs in and out ---------------------------------------------------------------------


def test_to_data_from_data_round_trip_keeps_roles_and_weights():
    w = Wiring(EDGES, num_nodes=5, input_nodes=[0], output_nodes=[2, 3], edge_weight=[1, -2, 3, 4])
    d = to_data(w)
    assert d.input_mask.tolist() == [True, False, False, False, False]
    assert d.output_mask.tolist() == [False, False, True, True, False]
    assert d.node_level.tolist() == [0, 0, 1, 2, 0]
    assert d.edge_weight.tolist() == [1.0, -2.0, 3.0, 4.0] and d.acyclic and not d.self_loops
    for back in (Wiring.from_data(d), Wiring(d)):
        assert torch.equal(back.edge_index, w.edge_index) and back.num_nodes == 5
        assert back.input_nodes.tolist() == [0] and back.output_nodes.tolist() == [2, 3]
        assert torch.equal(back.edge_weight, w.edge_weight)
    # arguments win over the Data
    assert Wiring(d, output_nodes=[3]).output_nodes.tolist() == [3]
    assert Wiring.from_data(d, input_nodes=[0, 1]).input_nodes.tolist() == [0, 1]
    cyc = Wiring([(0, 1), (1, 0), (1, 1)], acyclic=False, self_loops=True, input_nodes=[1])
    back = Wiring.from_data(to_data(cyc))
    assert not back.acyclic and back.self_loops and back.input_nodes.tolist() == [1]
    assert "node_level" not in to_data(cyc)
    assert to_data(Wiring(EDGES)).edge_weight is None  # no weights invented for a bare wiring


def test_from_data_agrees_with_networkx_path():
    from torch_geometric.data import Data
    from torch_geometric.utils import to_networkx as pyg_to_networkx

    # a plain PyG graph without roles: defaults from the degrees, acyclic detected
    d = Data(edge_index=torch.tensor([[0, 1, 2, 0], [2, 2, 3, 3]]), num_nodes=5)
    w = Wiring.from_data(d)
    oracle = Wiring.from_networkx(pyg_to_networkx(d))
    assert w.edge_index.tolist() == d.edge_index.tolist()  # the order of the Data is kept
    assert set(map(tuple, w.edge_index.t().tolist())) == set(
        map(tuple, oracle.edge_index.t().tolist())
    )
    assert w.num_nodes == oracle.num_nodes == 5
    assert w.input_nodes.tolist() == oracle.input_nodes.tolist() == [0, 1, 4]
    assert w.output_nodes.tolist() == oracle.output_nodes.tolist() == [3, 4]
    assert w.acyclic and w.edge_weight is None
    cyclic = Data(edge_index=torch.tensor([[0, 1, 1], [1, 0, 1]]), num_nodes=2)
    w = Wiring.from_data(cyclic)
    assert not w.acyclic and w.self_loops and w.input_nodes.tolist() == [0, 1]
    with pytest.raises(ValueError, match="self loop at node 1"):
        Wiring(cyclic)  # the constructor keeps its own defaults (acyclic, no self loops)


def test_sparse_adjacencies_and_edge_index():
    from torch_geometric import EdgeIndex
    from torch_geometric.utils import to_edge_index

    ei = torch.tensor([[2, 0, 1, 0], [3, 2, 2, 3]])
    coo = torch.sparse_coo_tensor(ei, torch.ones(4), (5, 5))
    expected = [[0, 0, 1, 2], [2, 3, 2, 3]]  # stored entries, row-major
    for adj in (coo, coo.to_sparse_csr(), coo.to_sparse_csc()):
        w = Wiring(adj)
        assert w.edge_index.tolist() == expected and w.num_nodes == 5
        assert w.edge_index.tolist() == to_edge_index(adj.to_sparse_csr())[0].tolist()
    # every stored entry is an edge, whatever its value
    assert Wiring(torch.sparse_coo_tensor(ei, torch.zeros(4), (4, 4))).num_edges == 4
    w = Wiring(EdgeIndex(ei, sparse_size=(6, 6)))
    assert w.num_nodes == 6 and w.edge_index.tolist() == ei.tolist()
    assert Wiring(EdgeIndex(ei)).num_nodes == 4
    with pytest.raises(ValueError, match=r"shape \[N, N\].*got \(4, 5\)"):
        Wiring(torch.sparse_coo_tensor(ei, torch.ones(4), (4, 5)))
    with pytest.raises(ValueError, match=r"square sparse_size.*\(4, 6\)"):
        Wiring(EdgeIndex(ei, sparse_size=(4, 6)))
    with pytest.raises(ValueError, match="at least one candidate edge"):
        Wiring(torch.sparse_coo_tensor(torch.empty(2, 0, dtype=torch.long), [], (3, 3)))


def test_edge_weight_checks_and_device_copy():
    w = Wiring(EDGES, edge_weight=torch.tensor([1, 2, 3, 4]))
    assert w.edge_weight.dtype == torch.float32 and "weighted=True" in repr(w)
    assert torch.equal(w.to("cpu").edge_weight, w.edge_weight)
    assert Wiring(EDGES).edge_weight is None and "weighted" not in repr(Wiring(EDGES))
    with pytest.raises(ValueError, match=r"'edge_weight' must have shape \[E\] = \[4\].*\(3,\)"):
        Wiring(EDGES, edge_weight=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="must be finite.*edge 2"):
        Wiring(EDGES, edge_weight=[1.0, 2.0, float("nan"), 0.0])


def test_data_errors():
    from torch_geometric.data import Data

    with pytest.raises(ValueError, match="must hold an 'edge_index'"):
        Wiring.from_data(Data(x=torch.zeros(3, 1)))
    d = Data(edge_index=torch.tensor([[0], [1]]), num_nodes=2, input_mask=torch.tensor([1, 0]))
    with pytest.raises(ValueError, match=r"'input_mask' must be a BoolTensor of shape \[num_nodes"):
        Wiring.from_data(d)
    with pytest.raises(TypeError, match="torch_geometric Data"):
        Wiring.from_data(EDGES)


def test_weights_through_networkx():
    w = Wiring(EDGES, edge_weight=[0.5, -2.0, 1.0, -0.25])
    g = to_networkx(w)
    assert all(d["weight"] >= 0 for _, _, d in g.edges(data=True))
    assert g.edges[1, 2]["weight"] == 2.0 and g.edges[1, 2]["edge_weight"] == -2.0
    assert torch.equal(Wiring.from_networkx(g).edge_weight, w.edge_weight)
    # a foreign graph's plain 'weight' is read as the signed weight
    h = nx.DiGraph()
    h.add_edge(0, 1, weight=-1.5)
    assert Wiring.from_networkx(h).edge_weight.tolist() == [-1.5]


def test_huge_node_id_is_refused_before_any_allocation():
    from dnwgraph.errors import DNWGraphError

    # num_nodes = 10**12 + 1 would make numpy allocate terabytes; the check names the id
    with pytest.raises(DNWGraphError, match=r"node id 1000000000000, too large: .*\[0, 67108864\)"):
        Wiring([(0, 10**12)])
    with pytest.raises(DNWGraphError, match="node id 1000000000000, too large"):
        Wiring(torch.tensor([[0], [10**12]]))
    with pytest.raises(DNWGraphError, match=r"'num_nodes' must be at most 67108864 \(got"):
        Wiring([(0, 1)], num_nodes=10**12)


@pytest.mark.parametrize("big", [2**63, 2**64 - 1, 2**70, -(2**70)])
def test_integer_ids_too_large_for_int64_are_called_too_large(big):
    with pytest.raises(ValueError, match=rf"node id {big}, too large"):
        Wiring([(0, 1), (1, big)])
    with pytest.raises(ValueError, match=rf"node id {big}, too large"):
        Wiring([(0, big)])


def test_non_integer_list_entry_is_named():
    with pytest.raises(ValueError, match=r"integer node ids \(got 'a' in pair 1: \(1, 'a'\)\)"):
        Wiring([(0, 1), (1, "a")])


@pytest.mark.parametrize("name", ["acyclic", "self_loops"])
@pytest.mark.parametrize("value", ["yes", "false", 1, None])
def test_flags_must_be_bools(name, value):
    with pytest.raises(ValueError, match=rf"'{name}' must be True or False \(got {value!r}\)"):
        Wiring([(0, 1)], **{name: value})
    assert Wiring([(0, 1)], **{name: np.bool_(False)}).num_edges == 1


@pytest.mark.parametrize("name", ["acyclic", "self_loops"])
@pytest.mark.parametrize("value", ["false", "no", 0, 1.0, ""])
def test_data_flags_are_booleans_or_an_error(name, value):
    """``acyclic="false"`` once became True by truth-testing; a flag is a bool, the text of
    one, or a one-element bool tensor (what PyG's ``from_networkx`` makes of a bool)."""
    from torch_geometric.data import Data

    d = Data(edge_index=torch.tensor([[0], [1]]), num_nodes=2)
    d[name] = value
    if value == "false":
        assert getattr(Wiring.from_data(d), name) is False
        return
    with pytest.raises(ValueError, match=rf"'data.{name}' must be true or false \(got {value!r}\)"):
        Wiring.from_data(d)


def test_data_flag_as_a_bool_tensor():
    from torch_geometric.data import Data

    d = Data(edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=2, acyclic=torch.tensor(False))
    assert Wiring.from_data(d).acyclic is False
    d.acyclic = torch.tensor([True, False])
    with pytest.raises(ValueError, match="'data.acyclic' must be true or false"):
        Wiring.from_data(d)
