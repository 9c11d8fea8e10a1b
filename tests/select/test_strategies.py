import pytest
import torch

from dnwgraph.select import Selection, create_selection, list_selections
from dnwgraph.select.strategies import SELECTIONS

TARGET = torch.tensor([1, 1, 2, 2, 2, 3])
WEIGHT = torch.tensor([0.1, -0.9, 0.5, -0.4, 0.2, 0.05])


def make(name, ratio=3, **kw):
    return create_selection(name, ratio, target=TARGET, num_nodes=4, **kw)


def test_registry_lists_all_strategies():
    # the package's own (a user's method registered by another test is left out)
    own = [n for n in list_selections() if SELECTIONS.get(n).__module__.startswith("dnwgraph.")]
    assert own == [
        "complete",
        "dnw",
        "dnw_no_update",
        "dnw_periodic",
        "edge_popup",
        "fixed",
        "gmp",
        "random",
        "reg_td",
        "rigl",
        "set",
        "snip",
        "td",
    ]
    for name in own:
        sel = make(name)
        assert isinstance(sel, Selection) and sel.name == name


def test_unknown_selection_lists_choices():
    with pytest.raises(ValueError, match=r"unknown selection 'dwn'; choose one of \['complete'"):
        make("dwn")
    with pytest.raises(ValueError, match=r"\]; did you mean 'dnw'\?$"):
        make("dwn")


def test_dnw_is_topk_by_magnitude_and_straight_through():
    sel = make("dnw")
    assert sel(WEIGHT).tolist() == [False, True, True, True, False, False]
    assert sel.straight_through and sel.k == 3
    assert not make("dnw_no_update").straight_through
    assert make("dnw_no_update")(WEIGHT).tolist() == sel(WEIGHT).tolist()


def test_per_node_scope():
    sel = make("dnw", 1, scope="per_node")
    # node 1: |-0.9| wins; node 2: 0.5 wins; node 3: its only edge.
    assert sel(WEIGHT).tolist() == [False, True, True, False, False, True]
    assert sel.k == 3


def test_random_is_seeded_fixed_and_same_budget():
    a, b, c = make("random", seed=1), make("random", seed=1), make("random", seed=2)
    assert torch.equal(a(WEIGHT), b(WEIGHT))
    assert int(a(WEIGHT).sum()) == 3 == int(c(WEIGHT).sum())
    # independent of the weights
    assert torch.equal(a(WEIGHT), a(-WEIGHT.flip(0)))
    assert "mask" in a.state_dict()
    masks = {tuple(make("random", seed=s)(WEIGHT).tolist()) for s in range(10)}
    assert len(masks) > 1


def test_random_per_node():
    sel = make("random", 1, scope="per_node", seed=3)
    assert torch.bincount(TARGET[sel(WEIGHT)], minlength=4).tolist() == [0, 1, 1, 1]


def test_complete_uses_everything():
    sel = make("complete", 1)
    assert sel(WEIGHT).all() and sel.k == 6 and sel.straight_through


def test_fixed_given_mask_and_freeze():
    mask = torch.tensor([True, False, False, False, False, True])
    sel = make("fixed", mask=mask)
    assert torch.equal(sel(WEIGHT), mask)
    lazy = make("fixed")
    assert lazy(WEIGHT).tolist() == [False, True, True, True, False, False]
    assert lazy(-WEIGHT.flip(0)).tolist() == [False, True, True, True, False, False]  # frozen
    state = lazy.state_dict()
    fresh = make("fixed")
    fresh.load_state_dict(state)
    assert torch.equal(fresh(torch.ones(6)), lazy.mask)
    with pytest.raises(ValueError, match=r"'mask' must be a BoolTensor of shape \[6\]"):
        make("fixed", mask=torch.ones(5, dtype=torch.bool))


def test_targeted_dropout_train_and_eval():
    torch.manual_seed(0)
    sel = make("td", drop_rate=0.5)
    top = make("dnw")(WEIGHT)
    sel.eval()
    assert torch.equal(sel(WEIGHT), top)
    sel.train()
    draws = torch.stack([sel(WEIGHT) for _ in range(400)]).float()
    assert (draws[:, top] == 1).all()  # the top-k is always used
    freq = draws[:, ~top].mean()
    assert 0.4 < float(freq) < 0.6  # the others with probability 1 - drop_rate
    assert sel.cache_key() is None
    assert make("td").drop_rate == pytest.approx(0.5)  # default: 1 - k/E
    assert make("reg_td").scope == "per_node"
    with pytest.raises(ValueError, match=r"'drop_rate' must be a float in \[0, 1\] \(got 1.5\)"):
        make("td", drop_rate=1.5)


def test_budget_errors_name_the_range():
    with pytest.raises(ValueError, match=r"in \[1, 6\] \(got 7\)"):
        make("dnw", 7)
    with pytest.raises(ValueError, match=r"'scope' must be one of"):
        make("dnw", scope="layer")


def test_fixed_k_is_the_number_of_edges_the_mask_uses():
    mask = torch.tensor([True, True, True, True, False, False])
    sel = make("fixed", 2, mask=mask)
    assert sel.k == 4 == int(sel(WEIGHT).sum())
    lazy = make("fixed", 2)
    assert lazy.k == 2
    lazy(WEIGHT)
    assert lazy.k == 2 == int(lazy.mask.sum())
    lazy.load_state_dict(sel.state_dict())  # a mask from a checkpoint
    assert lazy.k == 4


@pytest.mark.parametrize("name", ["dnw", "dnw_no_update", "fixed", "td", "reg_td"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_an_error_not_fewer_edges(name, bad):
    from dnwgraph.errors import NonFiniteError

    weight = WEIGHT.clone()
    weight[1] = bad
    with pytest.raises(NonFiniteError, match=r"1 of 6 edge weights are NaN or infinite"):
        make(name)(weight)
    with pytest.raises(NonFiniteError, match=r"6 of 6 edge weights"):
        make(name)(torch.full((6,), float("nan")))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", ["dnw", "td"])
def test_huge_finite_weights_whose_sum_overflows_are_selected(name, dtype):
    """The finiteness test sums |w| first (in the weights' dtype, float32 at least); a sum
    that overflows while every weight is finite is not an error: the element-wise test
    clears it."""
    big = torch.finfo(dtype).max
    weight = (torch.tensor([0.6, -0.9, 1e-3, 2e-3, 0.7, 3e-3], dtype=torch.float64) * big).to(dtype)
    assert not torch.isfinite(weight.abs().sum())
    mask = make(name).eval()(weight)  # eval: targeted dropout drops nothing, top-k alone
    expected = torch.zeros(6, dtype=torch.bool)
    expected[torch.topk(weight.abs(), int(mask.sum())).indices] = True
    assert torch.equal(mask, expected)


@pytest.mark.parametrize("seed", ["x", 1.5, True, -1, 2**64])
def test_random_seed_must_be_an_int(seed):
    with pytest.raises(ValueError, match=r"'seed' must be an int in \[0, 2\*\*63\)"):
        make("random", seed=seed)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("td", dict(drop_rate="x"), r"'drop_rate' must be a float in \[0, 1\] \(got 'x'\)"),
        ("td", dict(drop_rate=True), r"'drop_rate' must be a float in \[0, 1\] \(got True\)"),
        ("fixed", dict(mask="x"), r"'mask' must be a BoolTensor of shape \[6\] \(got str 'x'\)"),
        ("fixed", dict(mask=[True] * 6), r"'mask' must be a BoolTensor .* \(got list"),
        ("complete", dict(ratio=0), r"'ratio' as an int .* \[1, 6\] \(got 0\)"),
        ("complete", dict(ratio="1"), r"'ratio' must be an int .* \(got str '1'\)"),
    ],
)
def test_ill_typed_options_are_package_errors(name, options, message):
    """Found by the red team: a TypeError / AttributeError from inside the strategy, or (for
    ``complete``) no error at all, where a one-line package error belongs."""
    from dnwgraph.errors import DNWGraphError

    ratio = options.pop("ratio", 3)
    with pytest.raises(DNWGraphError, match=message):
        make(name, ratio, **options)


def test_selection_options_are_the_keywords_of_the_class_and_its_bases():
    from dnwgraph.select import selection_options

    assert selection_options("dnw") == ["scope"]
    assert selection_options("random") == ["scope", "seed"]
    assert selection_options("fixed") == ["mask", "scope"]
    assert selection_options("td") == ["drop_rate", "scope"]
    with pytest.raises(ValueError, match="unknown selection 'nope'; choose one of"):
        selection_options("nope")
