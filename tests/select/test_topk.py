import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dnwgraph.select import create_selection, graph_topk_mask, node_budget, resolve_k, topk_mask


@pytest.mark.parametrize(
    "ratio, num_edges, k",
    [(3, 10, 3), (10, 10, 10), (1, 1, 1), (0.5, 10, 5), (1.0, 7, 7), (0.01, 10, 1), (0.25, 6, 2)],
)
def test_resolve_k(ratio, num_edges, k):
    assert resolve_k(ratio, num_edges) == k


@pytest.mark.parametrize(
    "ratio, match",
    [
        (0, r"in \[1, 10\] \(got 0\)"),
        (11, r"in \[1, 10\] \(got 11\)"),
        (-1, r"got -1"),
        (0.0, r"in \(0, 1\] \(got 0.0\)"),
        (1.5, r"in \(0, 1\] \(got 1.5\)"),
        (float("nan"), r"in \(0, 1\]"),
    ],
)
def test_resolve_k_errors(ratio, match):
    with pytest.raises(ValueError, match=match):
        resolve_k(ratio, 10)


@pytest.mark.parametrize("ratio", [True, "0.5", None])
def test_resolve_k_type_errors(ratio):
    with pytest.raises(TypeError, match="'ratio' must be an int"):
        resolve_k(ratio, 10)


@pytest.mark.parametrize("ratio", [np.int64(3), np.int32(3), np.uint8(3)])
def test_a_numpy_integer_ratio_is_an_int(ratio):
    """numpy's integer scalars are ints (np.float64 is accepted as a subclass of float; an
    integer type of numpy was refused): a count, for the budget and the stored ratio."""
    assert resolve_k(ratio, 10) == 3 and type(resolve_k(ratio, 10)) is int
    assert node_budget(ratio, torch.tensor([0, 2, 5])).tolist() == [0, 2, 3]
    sel = create_selection("dnw", ratio, target=torch.tensor([1, 1, 1, 1]), num_nodes=2)
    assert sel.k == 3 and type(sel.ratio) is int


@pytest.mark.parametrize("ratio", [np.float32(0.5), np.float64(0.5)])
def test_a_numpy_float_ratio_is_a_float(ratio):
    assert resolve_k(ratio, 10) == 5
    sel = create_selection("dnw", ratio, target=torch.tensor([1, 1, 1, 1]), num_nodes=2)
    assert sel.k == 2 and type(sel.ratio) is float


@pytest.mark.parametrize("ratio", [np.bool_(True), np.array(3), torch.tensor(3)])
def test_numpy_bools_and_arrays_are_refused(ratio):
    with pytest.raises(TypeError, match="'ratio' must be an int"):
        resolve_k(ratio, 10)


def test_node_budget():
    deg = torch.tensor([0, 1, 2, 5])
    assert node_budget(2, deg).tolist() == [0, 1, 2, 2]
    assert node_budget(0.5, deg).tolist() == [0, 1, 1, 2]  # round-half-even, min 1
    with pytest.raises(ValueError, match=r"in \[1, 5\] \(got 6\)"):
        node_budget(6, deg)


def test_topk_mask_exact():
    score = torch.tensor([0.5, 2.0, 0.1, 1.0, 3.0])
    assert topk_mask(score, 3).tolist() == [False, True, False, True, True]
    assert topk_mask(score, 5).all()


def test_topk_mask_ties_lower_index_wins():
    score = torch.tensor([1.0, 2.0, 1.0, 1.0, 0.5, 1.0])
    assert topk_mask(score, 3).tolist() == [True, True, True, False, False, False]
    # Same answer however often it is asked, and for a permuted copy the index rule holds.
    for _ in range(5):
        assert topk_mask(score, 2).tolist() == [True, True, False, False, False, False]


def _per_node_oracle(score, budget, target):
    mask = torch.zeros_like(score, dtype=torch.bool)
    for v in range(budget.numel()):
        ids = [e for e in range(score.numel()) if target[e] == v]
        ids.sort(key=lambda e: (-float(score[e]), e))
        for e in ids[: int(budget[v])]:
            mask[e] = True
    return mask


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 40),
    st.integers(1, 6),
    st.integers(1, 4),
    st.integers(0, 2**31 - 1),
)
def test_topk_per_node_matches_oracle(num_edges, num_nodes, k, seed):
    gen = torch.Generator().manual_seed(seed)
    # few distinct values so that ties are common
    score = torch.randint(0, 4, (num_edges,), generator=gen).float()
    target = torch.randint(0, num_nodes, (num_edges,), generator=gen)
    deg = torch.bincount(target, minlength=num_nodes)
    budget = deg.clamp(max=k)
    mask = topk_mask(score, budget, scope="per_node", target=target)
    assert torch.equal(mask, _per_node_oracle(score, budget, target))
    assert torch.equal(torch.bincount(target[mask], minlength=num_nodes), budget)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.integers(0, 2**31 - 1), st.data())
def test_topk_global_matches_stable_sort(num_edges, seed, data):
    k = data.draw(st.integers(1, num_edges))
    gen = torch.Generator().manual_seed(seed)
    score = torch.randint(0, 5, (num_edges,), generator=gen).float()
    order = sorted(range(num_edges), key=lambda e: (-float(score[e]), e))
    expected = torch.zeros(num_edges, dtype=torch.bool)
    expected[order[:k]] = True
    assert torch.equal(topk_mask(score, k), expected)


def test_topk_mask_bad_scope():
    with pytest.raises(ValueError, match=r"'scope' must be one of \['global', 'per_node'\]"):
        topk_mask(torch.ones(3), 1, scope="layer")


@pytest.mark.parametrize("hint", [None, 0.5, 1e-9, 1e9, float("nan"), -1.0])
@pytest.mark.parametrize("seed", range(4))
def test_hinted_selection_is_exact(seed, hint):
    """Any hint (good, bad, absurd) gives the same mask and k-th value as no hint, ties
    included (scores rounded to few values)."""
    from dnwgraph.select.topk import global_topk, kth_largest

    gen = torch.Generator().manual_seed(seed)
    score = torch.rand(5000, generator=gen)
    if seed % 2:
        score = (score * 20).round() / 20  # many ties
    for k in (1, 37, 2500, 4999):
        expected = torch.sort(score, descending=True, stable=True).indices[:k]
        mask, kth = global_topk(score, k, hint)
        assert int(mask.sum()) == k
        assert set(torch.nonzero(mask).view(-1).tolist()) == set(expected.tolist())
        assert kth == float(score[expected[-1]]) == float(kth_largest(score, k, hint))


def test_selection_hint_follows_the_weights():
    from dnwgraph.select import create_selection

    sel = create_selection("dnw", 30, target=torch.zeros(200, dtype=torch.long), num_nodes=1)
    w = torch.randn(200, generator=torch.Generator().manual_seed(0))
    for step in range(5):
        w = w + 0.01 * torch.randn(200, generator=torch.Generator().manual_seed(step))
        assert torch.equal(sel(w), topk_mask(w.abs(), 30))
        assert sel._threshold_hint == float(w.abs()[sel(w)].min())


def test_topk_mask_checks_its_arguments_without_assert():
    """Real checks (they hold under ``python -O``): a wrong type is a DNWGraphTypeError, a
    wrong value a DNWGraphError."""
    from dnwgraph.errors import DNWGraphError, DNWGraphTypeError

    score = torch.tensor([3.0, 1.0, 2.0])
    with pytest.raises(DNWGraphTypeError, match="scope='global' needs an int 'k'"):
        topk_mask(score, torch.tensor(2))
    with pytest.raises(DNWGraphTypeError, match="needs an int 'k'"):
        topk_mask(score, 2.0)
    with pytest.raises(DNWGraphTypeError, match="'score' must be a tensor"):
        topk_mask([3.0, 1.0], 1)
    with pytest.raises(DNWGraphError, match=r"'score' must have shape \[E\] \(got \(1, 3\)\)"):
        topk_mask(score.view(1, 3), 1)
    with pytest.raises(DNWGraphError, match=r"'k' must be >= 0 \(got -1\)"):
        topk_mask(score, -1)
    with pytest.raises(DNWGraphTypeError, match="per-node budget tensor 'k' and a 'target'"):
        topk_mask(score, torch.tensor([1, 1]), scope="per_node")
    with pytest.raises(DNWGraphTypeError, match="per-node budget tensor 'k'"):
        topk_mask(score, 1, scope="per_node", target=torch.tensor([0, 1, 1]))
    with pytest.raises(DNWGraphError, match=r"'target' must have the shape of 'score' \[3\]"):
        topk_mask(score, torch.tensor([1, 1]), scope="per_node", target=torch.tensor([0, 1]))
    assert topk_mask(score, 0).tolist() == [False, False, False]
    # the two scopes agree when every edge points to one node
    one = torch.zeros(3, dtype=torch.long)
    assert torch.equal(
        topk_mask(score, 2), topk_mask(score, torch.tensor([2]), scope="per_node", target=one)
    )


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.integers(0, 4), min_size=1, max_size=30),
    k=st.integers(0, 32),
)
def test_graph_topk_mask_equals_topk_mask_ties_included(values, k):
    # few distinct values: ties at the threshold in most draws, filled by lower index
    score = torch.tensor(values, dtype=torch.float32)
    assert torch.equal(graph_topk_mask(score, k), topk_mask(score, min(k, score.numel())))


def test_graph_topk_mask_is_recorded_whole_by_dynamo():
    score = torch.tensor([3.0, 1.0, 1.0, 0.5, 1.0])
    torch._dynamo.reset()
    explained = torch._dynamo.explain(graph_topk_mask)(score, 3)
    torch._dynamo.reset()
    assert explained.graph_break_count == 0
    assert graph_topk_mask(score, 3).tolist() == [True, True, True, False, False]
