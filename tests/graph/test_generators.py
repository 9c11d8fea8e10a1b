from __future__ import annotations

import networkx as nx
import pytest
import torch

from dnwgraph import block_dag, complete, layered, random_dag
from dnwgraph.errors import DNWGraphError, DNWGraphTypeError


def test_block_dag_small_exact():
    w = block_dag([2, 1, 2])
    # every node feeds every node of every later block, source-major
    assert w.edge_index.tolist() == [[0, 0, 0, 1, 1, 1, 2, 2], [2, 3, 4, 2, 3, 4, 3, 4]]
    assert [lvl.tolist() for lvl in w.levels()] == [[0, 1], [2], [3, 4]]
    assert w.input_nodes.tolist() == [0, 1] and w.output_nodes.tolist() == [3, 4]


@pytest.mark.parametrize("sizes", [[2, 3], [1, 1, 1, 1], [4, 2, 7, 3], [32, 192, 192, 192, 192]])
def test_block_dag_edge_count_formula(sizes):
    w = block_dag(sizes)
    n = sum(sizes)
    expected = sum(sizes[i] * sizes[j] for i in range(len(sizes)) for j in range(i + 1, len(sizes)))
    assert expected == (n * n - sum(s * s for s in sizes)) // 2
    assert (w.num_nodes, w.num_edges) == (n, expected)
    assert len(w.levels()) == len(sizes)
    assert w.input_nodes.tolist() == list(range(sizes[0]))
    assert w.output_nodes.tolist() == list(range(n - sizes[-1], n))


def test_paper_block_dag():
    w = block_dag([32, 192, 192, 192, 192])
    assert (w.num_nodes, w.num_edges) == (800, 245_760)
    assert [lvl.numel() for lvl in w.levels()] == [32, 192, 192, 192, 192]


@pytest.mark.parametrize("sizes", [[3, 4], [2, 3, 1], [5, 5, 5, 2]])
def test_layered_is_dense_layers(sizes):
    w = layered(sizes)
    assert w.num_edges == sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    assert [lvl.numel() for lvl in w.levels()] == sizes
    # edges only between consecutive layers
    lvl = w.node_level()
    assert torch.all(lvl[w.edge_index[1]] - lvl[w.edge_index[0]] == 1)


@pytest.mark.parametrize("fn", [block_dag, layered])
def test_block_sizes_validated(fn):
    with pytest.raises(ValueError, match="at least two block sizes"):
        fn([5])
    with pytest.raises(ValueError, match="positive ints"):
        fn([2, 0, 3])
    with pytest.raises(ValueError, match="positive ints"):
        fn([2, 1.5])


def test_complete():
    w = complete(4)
    assert w.num_edges == 12 and not w.acyclic and not w.self_loops
    assert w.input_nodes.tolist() == [0, 1, 2, 3] == w.output_nodes.tolist()
    assert w.edge_index[:, :3].tolist() == [[0, 0, 0], [1, 2, 3]]
    w = complete(4, self_loops=True, input_nodes=[0], output_nodes=[3])
    assert w.num_edges == 16 and w.self_loops
    assert w.input_nodes.tolist() == [0] and w.output_nodes.tolist() == [3]
    assert complete(1, self_loops=True).num_edges == 1
    with pytest.raises(ValueError, match="'num_nodes' must be >= 2"):
        complete(1)
    with pytest.raises(TypeError, match="'num_nodes' must be an int"):
        complete(3.0)


@pytest.mark.parametrize(
    "kind, kwargs, count",
    [
        ("er", {"p": 0.3}, None),
        ("ws", {"k": 4, "p": 0.75}, 30 * 4 // 2),  # N k / 2
        ("ba", {"m": 3}, 3 * (30 - 3)),  # m (N - m)
        ("ws", {}, 30 * 4 // 2),
        ("ba", {}, 5 * (30 - 5)),
    ],
)
def test_random_dag(kind, kwargs, count):
    w = random_dag(kind, 30, seed=1, **kwargs)
    again = random_dag(kind, 30, seed=1, **kwargs)
    assert torch.equal(w.edge_index, again.edge_index)
    assert w.acyclic and torch.all(w.edge_index[0] < w.edge_index[1])  # low -> high id
    assert nx.is_directed_acyclic_graph(nx.DiGraph(w.edge_index.t().tolist()))
    if count is not None:
        assert w.num_edges == count
    assert torch.equal(w.input_nodes, (w.in_degree() == 0).nonzero().view(-1))
    assert torch.equal(w.output_nodes, (w.out_degree() == 0).nonzero().view(-1))


def test_random_dag_er_matches_networkx_and_seed_matters():
    w = random_dag("er", 20, seed=3)  # default p = 0.2
    g = nx.erdos_renyi_graph(20, 0.2, seed=3)
    assert w.num_edges == g.number_of_edges()
    other = random_dag("er", 20, seed=4)
    assert not torch.equal(w.edge_index, other.edge_index)


def test_random_dag_errors():
    with pytest.raises(
        ValueError, match=r"^unknown random graph kind 'sbm'; choose one of \['ba', 'er', 'ws'\]$"
    ):
        random_dag("sbm", 10, seed=0)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['k'\] \(valid: p\)"):
        random_dag("er", 10, seed=0, k=3)
    with pytest.raises(ValueError, match="'p' must be a probability"):
        random_dag("er", 10, seed=0, p=1.5)
    with pytest.raises(ValueError, match="'k' must be even"):
        random_dag("ws", 10, seed=0, k=3)
    with pytest.raises(ValueError, match=r"'m' must be an int in \[1, 10\)"):
        random_dag("ba", 10, seed=0, m=10)
    with pytest.raises(ValueError, match="'num_nodes' must be >= 2"):
        random_dag("er", 1, seed=0)
    with pytest.raises(ValueError, match="drew no edge"):
        random_dag("er", 5, seed=0, p=0.0)
    with pytest.raises(TypeError):
        random_dag("er", 10)  # seed is required


@pytest.mark.parametrize(
    "build",
    [
        lambda n: complete(n),
        lambda n: random_dag("er", n, seed=0),
        lambda n: random_dag("ba", 10, seed=0, m=n),
        lambda n: random_dag("ws", 10, seed=0, k=n),
        lambda n: block_dag([2, n]),
        lambda n: layered([n, 2]),
    ],
    ids=["complete", "random_dag", "ba-m", "ws-k", "block_dag", "layered"],
)
def test_generators_raise_one_type_per_mistake(build):
    """A wrong type is a DNWGraphTypeError (a TypeError), a wrong value a DNWGraphError (a
    ValueError), whichever generator takes the argument."""
    for wrong_type in (3.0, "4", True, None):
        with pytest.raises(DNWGraphTypeError, match="int"):
            build(wrong_type)
    for wrong_value in (-1, 0):
        with pytest.raises(DNWGraphError) as info:
            build(wrong_value)
        assert not isinstance(info.value, TypeError)


def test_random_dag_probability_types():
    with pytest.raises(DNWGraphTypeError, match="'p' must be a probability"):
        random_dag("er", 10, seed=0, p="0.5")
    with pytest.raises(DNWGraphError, match="'p' must be a probability"):
        random_dag("er", 10, seed=0, p=-0.1)
