import pytest
import torch

from dnwgraph import count_params, create_model, list_models
from dnwgraph.errors import DNWGraphTypeError
from dnwgraph.models import ContinuousTimeNeuralGraph, DiscreteTimeNeuralGraph, StaticNeuralGraph

PRESETS = {
    "tiny_static": ((2, 3, 32, 32), StaticNeuralGraph),
    "tiny_discrete": ((2, 3, 32, 32), DiscreteTimeNeuralGraph),
    "tiny_continuous": ((2, 3, 32, 32), ContinuousTimeNeuralGraph),
    "mnist1d_static": ((2, 40), StaticNeuralGraph),
    "mnist1d_randwire": ((2, 40), StaticNeuralGraph),
    "mnist1d_discrete": ((2, 40), DiscreteTimeNeuralGraph),
    "mnist1d_continuous": ((2, 40), ContinuousTimeNeuralGraph),
}
SELECTIONS = ["dnw", "dnw_no_update", "random", "complete", "fixed", "td", "reg_td"]
# a cheap fixed-step solver keeps the continuous smoke tests fast; dopri5 is tested elsewhere
FAST = {"tiny_continuous": {"solver": "euler", "step_size": 0.5}}
FAST["mnist1d_continuous"] = FAST["tiny_continuous"]


def build(name, **kwargs):
    torch.manual_seed(0)
    if name.endswith("continuous"):
        pytest.importorskip("torchdiffeq")
    return create_model(name, **FAST.get(name, {}), **kwargs)


def test_registered():
    assert set(PRESETS) <= set(list_models())


@pytest.mark.parametrize("selection", SELECTIONS)
@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_forward_backward_and_gradient_rule(name, selection):
    shape, cls = PRESETS[name]
    model = build(name, selection=selection, num_classes=7)
    assert isinstance(model, cls) and model.wiring.num_nodes in (320, 800)
    out = model(torch.randn(shape))
    assert out.shape == (shape[0], 7) and torch.isfinite(out).all()
    active = model.conv.active_mask()  # the mask of this (training) forward pass
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname
    grad = model.conv.edge_weight.grad
    if selection == "dnw":
        assert grad[~active].abs().sum() > 0
    elif selection in ("dnw_no_update", "random", "fixed"):
        assert int(active.sum()) == model.conv.k
        assert torch.equal(grad[~active], torch.zeros_like(grad[~active]))
    elif selection == "complete":
        assert bool(active.all())


@pytest.mark.parametrize(
    "name", ["mnist1d_static", "mnist1d_discrete", "tiny_static", "mnist1d_randwire"]
)
@pytest.mark.parametrize("selection,options", [("random", {"seed": 3}), ("fixed", {}), ("dnw", {})])
def test_create_and_load_state_dict_reproduce_the_model(name, selection, options):
    shape = PRESETS[name][0]
    a = build(name, selection=selection, **options)
    x = torch.randn(shape)
    a.eval()
    ref = a(x)  # freezes the fixed mask
    torch.manual_seed(1)
    b = create_model(name, selection=selection, **{k: v + 1 for k, v in options.items()})
    b.load_state_dict(a.state_dict())
    b.eval()
    assert torch.equal(b.conv.active_mask(), a.conv.active_mask())
    assert torch.allclose(b(x), ref, atol=1e-6)


def test_sizes_of_the_paper():
    tiny = build("tiny_static")
    assert tiny.conv.k == 32_000 and tiny.conv.num_edges == 254_960
    assert tiny.output_nodes.tolist() == list(range(700, 800))
    assert 40_000 < count_params(tiny) < 42_000
    rec = build("tiny_discrete")
    assert rec.conv.num_edges == 800 * 800 and rec.conv.k == 32_000
    small = build("mnist1d_static")
    assert small.conv.k == 2_048 and small.wiring.num_nodes == 320
    assert 4_000 < count_params(small) < 6_000
    assert build("mnist1d_static", ratio=0.05).conv.k == round(0.05 * small.conv.num_edges)


def test_an_unknown_keyword_is_named_with_close_matches_and_the_valid_ones():
    """Not a TypeError from deep inside the selection: the preset's own message."""
    with pytest.raises(
        DNWGraphTypeError,
        match=r"^unknown keyword 'ratoi' for model 'mnist1d_static'; did you mean 'ratio'\? "
        r"\(valid: impl, num_classes, ratio, selection, the options of selection 'dnw' "
        r"\[scope\] and the keywords of StaticNeuralGraph that it does not set\)$",
    ):
        create_model("mnist1d_static", ratoi=3)
    # the options listed are those of the selection asked for
    with pytest.raises(DNWGraphTypeError, match=r"did you mean 'seed'\?.*'random' \[scope, seed\]"):
        create_model("mnist1d_static", selection="random", sed=1)
    # a keyword the preset sets itself is refused by name too (not "multiple values")
    with pytest.raises(DNWGraphTypeError, match=r"^unknown keyword 'stem' for model"):
        create_model("mnist1d_static", stem=None)
    # a factory without **kwargs: checked before it is called
    with pytest.raises(
        DNWGraphTypeError,
        match=r"^unknown keyword 'widht' for model 'mobilenetv1_x25'; did you mean 'width'\? "
        r"\(valid: input_size, num_classes, width\)$",
    ):
        create_model("mobilenetv1_x25", widht=0.5)
    # keywords passed on still work
    assert create_model("mnist1d_static", selection="random", seed=1).executor.conv.k > 0


def test_errors():
    with pytest.raises(ValueError, match="unknown model 'tiny_static2'"):
        create_model("tiny_static2")
    with pytest.raises(ValueError, match="unknown selection 'magic'"):
        create_model("mnist1d_static", selection="magic")
    for bad in (0, -3, 1.5, 0.0, 10**7):
        with pytest.raises(ValueError, match="ratio"):
            create_model("mnist1d_static", ratio=bad)
    with pytest.raises(ValueError, match="'impl' must be one of"):
        create_model("mnist1d_static", impl="fast")
    model = create_model("mnist1d_static")
    with pytest.raises(ValueError, match=r"'x' must have shape \[B, 40\] \(got \(2, 41\)\)"):
        model(torch.randn(2, 41))
    tiny = create_model("tiny_static")
    with pytest.raises(ValueError, match=r"'x' must have shape \[B, 3, 32, 32\]"):
        tiny(torch.randn(2, 3, 28, 28))


def test_a_model_built_from_a_spec_equals_the_preset():
    """The preset is the model class with a WiringSpec: same parameters, same outputs."""
    from dnwgraph import WiringSpec, block_dag
    from dnwgraph.models._graph import signal_stem

    preset = build("mnist1d_static", selection="random", seed=4, grad_every=2)
    torch.manual_seed(0)
    spec = WiringSpec(
        2_048, "random", node_op="conv1d", selection_options={"seed": 4}, grad_every=2
    )
    model = StaticNeuralGraph(
        block_dag([32, 64, 64, 64, 64, 32]),
        spec,
        stem=signal_stem(32),
        readout="max",
        input_shape=(40,),
    )
    assert model.spec == preset.spec
    a, b = preset.state_dict(), model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(3, 40)
    assert torch.equal(preset(x), model(x))


def test_preset_keywords_go_to_the_spec_or_the_model():
    model = build(
        "mnist1d_discrete",
        selection="td",
        drop_rate=0.25,
        scope="per_node",
        node_op_options={"kernel_size": 5},
        fan_in="candidates",
        norm="batch",
        ratio=1_024,
    )
    spec = model.spec
    assert (spec.selection, spec.scope, spec.fan_in, spec.node_op) == (
        "td", "per_node", "candidates", "conv1d",
    )  # fmt: skip
    assert spec.selection_options == {"drop_rate": 0.25}
    assert spec.node_op_options == {"kernel_size": 5}
    assert spec.ratio == 1_024 / (320 * 320)  # a per-node budget: the same density per node
    assert model.step.node_op.conv.kernel_size == (5,)
    assert type(model.step.norm.norm).__name__ == "BatchNorm1d"  # the model's own keyword
    assert model.conv.selection.drop_rate == 0.25 and model.conv.fan_in == "candidates"


@pytest.mark.parametrize("selection", ["dnw", "random"])
def test_randwire_preset_trains_in_a_plain_loop(selection):
    from dnwgraph.models.presets import randwire_wiring

    wiring = randwire_wiring()
    # RandWire's shape: inputs feed the graph's sources, its sinks feed the outputs
    assert wiring.num_nodes == 320 and wiring.input_nodes.tolist() == list(range(32))
    assert wiring.output_nodes.tolist() == list(range(288, 320)) and wiring.num_levels > 6
    model = build("mnist1d_randwire", selection=selection)
    assert model.executor.chain.order is not None  # run as a chain in level order
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 40, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0] - 0.05
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))
