"""MobileNetV1-DNW: construction, edge budgets ("x d"), the paper's counts, presets."""

from __future__ import annotations

import copy
import functools
import math
from pathlib import Path

import networkx as nx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dnwgraph import WiringSpec
from dnwgraph.errors import DNWGraphError
from dnwgraph.models import create_model, list_models
from dnwgraph.models.mobilenet import (
    STAGES,
    DepthwiseNodeOp,
    DNWClassifier,
    DNWStage,
    MobileNetV1,
    MobileNetV1DNW,
    paper_counts,
    pointwise_weights,
    stage_budget,
)

PRESETS = [
    "mobilenetv1_dnw_x225",
    "mobilenetv1_dnw_x3",
    "mobilenetv1_dnw_x49",
    "mobilenetv1_dnw_small_x15",
    "mobilenetv1_dnw_small_x225",
    "mobilenetv1_random_x225",
    "mobilenetv1_random_x49",
]

#: A small stage configuration: the same structure, tiny widths (fast tests).
TINY = ((4, 6, 1, 1), (6, 8, 2, 3), (8, 10, 2, 2))


@functools.cache
def _preset(name: str, **kwargs) -> MobileNetV1DNW:
    """Each full-size preset is built once per session (about 1 s each); ``impl="dense"``
    keeps the forward cheap -- the fused path is compared with it on small stages below."""
    torch.manual_seed(0)
    return create_model(name, impl="dense", **kwargs)  # type: ignore[return-value]


def test_presets_registered():
    assert set(PRESETS) <= set(list_models("mobilenetv1_*"))
    assert "mobilenetv1_x25" in list_models("mobilenetv1_*")


def test_stage_budget_formula():
    # k = ceil(d^2 (in*out + (levels-1) out^2)) -- the reference's prune_rate = 1 - d
    pw = [pointwise_weights(*s[:2], s[3]) for s in STAGES]
    assert pw == [2048, 24576, 98304, 1441792, 1572864]
    assert sum(pw) == 3_139_584  # every pointwise weight of MobileNetV1 x1.0
    for d in (0.15, 0.225, 0.3, 0.49, 1.0):
        for (cin, cout, _, lv), p in zip(STAGES, pw, strict=True):
            k = stage_budget(cin, cout, lv, d)
            assert k == math.ceil(d * d * p - 1e-9)
            assert d * d * p <= k < d * d * p + 1
    assert stage_budget(32, 64, 1, 0.25) == 128  # exact products are not rounded up
    with pytest.raises(ValueError, match="width"):
        stage_budget(32, 64, 1, 1.5)


@pytest.mark.parametrize(
    "name", ["mobilenetv1_dnw_small_x15", "mobilenetv1_dnw_x225", "mobilenetv1_dnw_x49"]
)
def test_model_edge_counts_equal_formula(name):
    model = _preset(name)
    ratio = model.width
    for stage, (cin, cout, stride, levels) in zip(model.stages, STAGES, strict=True):
        # candidates: inputs -> every level, every level -> every later level
        cand = levels * cin * cout + levels * (levels - 1) // 2 * cout**2
        assert stage.conv.num_edges == stage.wiring.num_edges == cand
        assert stage.conv.k == stage_budget(cin, cout, levels, ratio)
        assert int(stage.conv.active_mask().sum()) == stage.conv.k
        assert stage.stride == stride
        assert [len(lv) for lv in stage.wiring.levels()] == [cin] + [cout] * levels


def test_small_classifier_budget():
    model = _preset("mobilenetv1_dnw_small_x15", num_classes=1000, input_size=224)
    assert isinstance(model.classifier, DNWClassifier)
    assert model.classifier.conv.num_edges == 1024 * 1000
    assert model.classifier.conv.k == math.ceil(0.15 * 1024 * 1000)
    assert len(model.wirings) == 6


def _alive(conv, row: int) -> torch.Tensor:
    """Nodes with a selected outgoing (row 0) or incoming (row 1) edge."""
    ends = conv.edge_index[row, conv.active_mask()]
    return torch.bincount(ends, minlength=conv.num_nodes) > 0


def test_paper_counts_imagenet_x225():
    """The reference profiling rule at 224 px, initialisation (almost every node alive)."""
    model = _preset("mobilenetv1_dnw_x225")  # 10 classes
    counts = paper_counts(model, input_size=224)
    ks = [stage_budget(c, o, lv, 0.225) for c, o, _, lv in STAGES]
    spatial = [112, 56, 28, 14, 7]
    # nodes with a depthwise op: the input nodes and every level but the last
    op_nodes = [c + o * (lv - 1) for c, o, _, lv in STAGES]
    with_out = [
        int(_alive(stage.conv, 0)[:n].sum())
        for stage, n in zip(model.stages, op_nodes, strict=True)
    ]
    assert all(w <= n for w, n in zip(with_out, op_nodes, strict=True))
    macs = sum((k + 9 * n) * s * s for k, n, s in zip(ks, with_out, spatial, strict=True))
    stem_out = with_out[0] if STAGES[0][3] == 1 else None
    assert stem_out is not None
    macs += 3 * 9 * stem_out * 112 * 112
    final_alive = int(_alive(model.stages[-1].conv, 1)[-1024:].sum())
    macs += final_alive * 49 + final_alive * 10
    params = sum(ks) + 9 * sum(with_out) + 27 * stem_out + final_alive * 10
    assert counts == {
        "params": params,
        "macs": macs,
        "edges": sum(ks),
        "candidates": sum(s.conv.num_edges for s in model.stages),
    }
    assert counts["edges"] == 158_944
    # Every node alive gives an upper bound of the paper's trained 42.1M (dead nodes are free).
    assert 45e6 < counts["macs"] < 60e6


def test_plain_mobilenet_x25_counts():
    """The paper's baseline: MobileNetV1 x0.25 (published: 0.5M parameters, 41M MACs)."""
    model = MobileNetV1(0.25, num_classes=1000, input_size=224)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    pointwise = [m for m in convs if m.kernel_size == (1, 1)]
    assert sum(m.weight.numel() for m in pointwise) == 0.25**2 * 3_139_584
    no_bn = sum(m.weight.numel() for m in convs) + 256 * 1000 + 1000
    # stem 3*8*9 + depthwise 9*1240 + pointwise 196,224 + classifier 256*1000 + 1000
    assert no_bn == 216 + 9 * 1240 + 196_224 + 257_000 == 464_600


def test_depthwise_node_op_matches_channel_major():
    torch.manual_seed(0)
    op = DepthwiseNodeOp(5, stride=2).double()
    x = torch.randn(5, 3, 7, 7, dtype=torch.double)  # node-first
    ref_in = x.transpose(0, 1)  # [B, C, H, W]
    ref = op.conv(F.relu(F.batch_norm(ref_in, None, None, op.norm.weight, op.norm.bias, True)))
    torch.testing.assert_close(op(x), ref.transpose(0, 1))
    op.eval()  # running statistics path
    ref = op.conv(F.relu(op.norm(ref_in)))
    torch.testing.assert_close(op(x), ref.transpose(0, 1))


def _stage_reference(stage: DNWStage, x: torch.Tensor) -> torch.Tensor:
    """The reference code's channel-major forward: a dense masked weight, 1x1 convolutions."""
    conv = stage.conv
    n, cin, cout = conv.num_nodes, stage.in_channels, stage.out_channels
    w = torch.zeros(n, n, dtype=x.dtype)
    mask = conv.active_mask()
    src, dst = conv.edge_index[:, mask]
    w[dst, src] = conv.edge_weight[mask]
    z = stage.node_ops[0](x).transpose(0, 1)  # [B, cin, h, w]
    agg = torch.einsum("vu,buhw->bvhw", w[:, :cin], z)
    for i, op in enumerate(stage.node_ops[1:], start=1):
        rows = slice(cin + (i - 1) * cout, cin + i * cout)
        zi = op(agg[:, rows].transpose(0, 1)).transpose(0, 1)
        agg = agg + torch.einsum("vu,buhw->bvhw", w[:, rows], zi)
    return agg[:, n - cout :].transpose(0, 1)


@pytest.mark.parametrize("impl", ["sparse", "scatter", "dense"])
def test_stage_matches_masked_dense_reference(impl):
    torch.manual_seed(0)
    stage = DNWStage(4, 5, stride=2, levels=3, spec=WiringSpec(30, impl=impl)).double()
    x = torch.randn(4, 2, 6, 6, dtype=torch.double)
    out = stage(x)
    assert out.shape == (5, 2, 3, 3)
    torch.testing.assert_close(out, _stage_reference(stage, x))


def test_stage_straight_through_gradient_reaches_unselected_edges():
    torch.manual_seed(0)
    stage = DNWStage(3, 4, stride=1, levels=2, spec=WiringSpec(8)).double()
    x = torch.randn(3, 2, 4, 4, dtype=torch.double)
    stage(x).square().sum().backward()
    grad = stage.conv.edge_weight.grad
    unselected = ~stage.conv.active_mask()
    # inputs -> every level get a gradient whether used or not
    from_inputs = stage.conv.edge_index[0] < 3
    assert grad[unselected & from_inputs].abs().sum() > 0


def test_stage_rejects_channel_major_input():
    stage = DNWStage(3, 4, stride=1, levels=1, spec=WiringSpec(4))
    with pytest.raises(ValueError, match=r"node-first \[3, B, H, W\]"):
        stage(torch.randn(2, 4, 5, 5))


def test_tiny_model_forward_backward_every_parameter():
    torch.manual_seed(0)
    model = MobileNetV1DNW(0.5, num_classes=3, stages=TINY, small=True)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_state_dict_round_trip_random_selection():
    torch.manual_seed(0)
    a = MobileNetV1DNW(
        0.5, spec=WiringSpec(1.0, "random", selection_options={"seed": 3}), stages=TINY
    )
    b = MobileNetV1DNW(
        0.5, spec=WiringSpec(1.0, "random", selection_options={"seed": 4}), stages=TINY
    )
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(a(x), b(x))


def test_reg_td_uses_a_per_node_fraction():
    model = MobileNetV1DNW(0.5, spec=WiringSpec(1.0, "reg_td"), stages=TINY)
    stage = model.stages[1]
    assert stage.conv.selection.scope == "per_node"
    assert abs(stage.conv.k - stage_budget(6, 8, 3, 0.5)) <= stage.conv.num_nodes


def test_bad_arguments():
    with pytest.raises(ValueError, match="'width' is the width d"):
        MobileNetV1DNW(2)
    with pytest.raises(ValueError, match="'input_size' must be an int >= 32"):
        MobileNetV1DNW(0.2, input_size=16)
    with pytest.raises(ValueError, match="must chain"):
        MobileNetV1DNW(0.2, stages=((4, 6, 1, 1), (5, 8, 2, 1)))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        MobileNetV1DNW(0.5, stages=TINY)(torch.randn(3, 32, 32))


@pytest.mark.parametrize("name", PRESETS)
def test_preset_forward_cifar(name):
    model = _preset(name)
    assert isinstance(model, MobileNetV1DNW) and model.stem.stride == (1, 1)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    expect = "random" if "random" in name else "dnw"
    assert all(s.conv.selection.name == expect for s in model.stages)


def test_preset_forward_imagenet_eval():
    model = _preset("mobilenetv1_dnw_small_x15", num_classes=1000, input_size=224).eval()
    assert model.stem.stride == (2, 2)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


@pytest.mark.slow
def test_full_size_fused_training_step():
    """x0.225 with the fused sparse path: a training step, every parameter gets a gradient."""
    torch.manual_seed(0)
    model = create_model("mobilenetv1_dnw_x225", num_classes=10, input_size=32)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    F.cross_entropy(out, torch.tensor([1, 2])).backward()
    for stage in model.stages:
        grad = stage.conv.edge_weight.grad
        assert grad is not None and (grad[~stage.conv.active_mask()] != 0).any()


def test_plain_mobilenet_forward():
    model = create_model("mobilenetv1_x25", num_classes=10, input_size=32)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def _paper_counts_by_hand(model: MobileNetV1DNW, image: int) -> tuple[int, int]:
    """The paper's rule (see :func:`paper_counts`) computed on its own: the resolutions are
    read from a forward (hooks on the stem and the stages), dead nodes from networkx."""
    sizes: list[int] = []
    hooks = [model.stem.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))]
    hooks += [
        s.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1])) for s in model.stages
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, image, image))
    for h in hooks:
        h.remove()
    stem_side, stage_sides = sizes[0], sizes[1:]
    params = macs = 0
    for i, (stage, side) in enumerate(zip(model.stages, stage_sides, strict=True)):
        conv = stage.conv
        g = nx.DiGraph()
        g.add_nodes_from(range(conv.num_nodes))
        g.add_edges_from(conv.edge_index[:, conv.active_mask()].t().tolist())
        sources = range(conv.num_nodes - stage.out_channels)  # nodes that carry a depthwise op
        live = sum(g.out_degree(v) > 0 for v in sources)
        params += g.number_of_edges() + 9 * live
        macs += (g.number_of_edges() + 9 * live) * side**2
        if i == 0:  # the stem: a dense 3x3 into every input node that feeds an edge
            fed = sum(g.out_degree(v) > 0 for v in range(stage.in_channels))
            params += 3 * 9 * fed
            macs += 3 * 9 * fed * stem_side**2
    outputs = range(conv.num_nodes - stage.out_channels, conv.num_nodes)
    reached = sum(g.in_degree(v) > 0 for v in outputs)
    macs += reached * stage_sides[-1] ** 2  # the global average pool
    head = int(model.classifier.conv.active_mask().sum())  # small: a wired classifier
    return params + head, macs + head


def test_presets_leave_no_loop_variables_in_the_module():
    import dnwgraph.models.mobilenet.presets as presets

    assert not [n for n in vars(presets) if n.startswith("_") and n[1:] in ("name", "ratio")]
    assert [p[0] for p in presets.PRESETS] == PRESETS


def test_count_params_and_macs_follow_the_paper_formula():
    from dnwgraph import count_macs, count_params

    model = _preset("mobilenetv1_dnw_small_x225")
    params, macs = _paper_counts_by_hand(model, 32)
    assert params > 10_000 and macs > params  # the count is not trivially empty
    assert count_params(model) == params == paper_counts(model)["params"]
    assert count_macs(model, (1, 3, 32, 32)) == macs == paper_counts(model)["macs"]


def test_count_stage_by_modules():
    """A stage alone: selected edges + depthwise + BN, the generic convention."""
    from dnwgraph import count_macs, count_params

    stage = DNWStage(4, 5, stride=2, levels=3, spec=WiringSpec(30))
    bn_dw = 2 * (4 + 5 * 2) + 9 * (4 + 5 * 2)
    assert count_params(stage) == 30 + bn_dw
    macs = count_macs(stage, (4, 1, 8, 8))  # node-first: the "batch" here is the 4 nodes
    sel = stage.conv.active_mask()
    src = stage.conv.edge_index[0, sel]
    edge_macs = int(sel.sum()) * 16  # every selected edge, once, at 4x4
    node_macs = 4 * (64 + 9 * 16) + 2 * 5 * (16 + 9 * 16)
    assert src.numel() == 30 and macs == (edge_macs + node_macs) // 4


CONFIGS = sorted(
    (Path(__file__).resolve().parents[2] / "examples" / "configs").glob("*mobilenetv1*.yaml")
)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_example_configs_resolve_and_build(path):
    """Every MobileNetV1 config passes the training config checks and its model builds
    (DNW presets with tiny stages, to stay fast)."""
    from dnwgraph.train.config import load_config

    cfg = load_config(path)
    name, kwargs = cfg.model.name, dict(cfg.model.kwargs)
    assert name in list_models("mobilenetv1_*")
    if name.startswith("mobilenetv1_x"):
        model = create_model(name, **kwargs)
    else:
        model = create_model(name, stages=TINY, **kwargs)
        assert all(
            s.conv.selection.name == kwargs.get("selection", s.conv.selection.name)
            for s in model.stages
        )
    size = kwargs["input_size"]
    assert size == (224 if path.stem.startswith("imagenet") else 32)
    assert cfg.data.name == ("imagefolder" if size == 224 else "cifar10")


def test_configs_cover_the_paper_experiments():
    stems = {p.stem for p in CONFIGS}
    for tag in ("dnw_x225", "random_x225", "dnw_no_update_x225", "complete", "ft_x225",
                "lottery_one_shot_x225", "td_x225", "reg_td_x225"):  # fmt: skip
        assert f"cifar10_mobilenetv1_{tag}" in stems
    for name in PRESETS:
        assert f"imagenet_{name}" in stems


def test_compact_wirings_same_outputs_fewer_candidates():
    torch.manual_seed(0)
    model = MobileNetV1DNW(0.5, num_classes=3, stages=TINY, small=True)
    model(torch.randn(4, 3, 32, 32))  # move the BN statistics off their defaults
    model.eval()
    small = model.compact_wirings()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(small(x), model(x))
    for a, b in zip(
        [*model.stages, model.classifier], [*small.stages, small.classifier], strict=True
    ):
        assert b.conv.num_edges == b.conv.k == a.conv.k < a.conv.num_edges
        assert b.conv.selection.name == "complete"
    assert model.stages[0].conv.selection.name == "dnw"  # the original is left unchanged


@pytest.mark.parametrize("selection", ["dnw", "random"])
def test_dense_stage_gradients_match_fused(selection):
    """impl="dense" (the reference code's dense masked weight) and the fused sparse path give
    the same output and the same gradients for x and every candidate edge."""
    x = torch.randn(4, 2, 6, 6, dtype=torch.double)
    grads = []
    for impl in ("sparse", "dense"):
        torch.manual_seed(0)
        stage = DNWStage(4, 5, 2, 3, WiringSpec(30, selection, impl=impl)).double()
        xi = x.clone().requires_grad_()
        out = stage(xi)
        out.square().sum().backward()
        grads.append((out.detach(), xi.grad, stage.conv.edge_weight.grad))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
    unselected = grads[0][2][~stage.conv.active_mask()]
    assert (unselected != 0).any() == (selection == "dnw")


def test_input_dtype_and_batch_are_checked_at_the_entry() -> None:
    model = MobileNetV1DNW(0.5, num_classes=3, stages=TINY, small=True)
    with pytest.raises(ValueError, match=r"dtype torch.float32 \(got torch.float64\)"):
        model(torch.randn(2, 3, 32, 32, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"at least one sample \[B, 3, H, W\]"):
        model(torch.zeros(0, 3, 32, 32))
    with pytest.raises(TypeError, match=r"'x' must be a Tensor"):
        model([[0.0]])


def _forward_dense_before_the_split(stage: DNWStage, x: torch.Tensor) -> torch.Tensor:
    """DNWStage's own dense path before it used WiringConv's: one dense [N, N] matrix per call,
    straight-through as torch.where(mask, w, w - w.detach())."""
    conv = stage.conv
    mask, w = conv.active_mask(), conv.edge_weight
    eff = torch.where(mask, w, w - w.detach()) if conv.selection.straight_through else w * mask
    src, dst = conv.edge_index
    dense = w.new_zeros(conv.num_nodes, conv.num_nodes).index_put((dst, src), eff)
    z = stage.node_ops[0](x)
    cin, cout = stage.in_channels, stage.out_channels
    agg = dense[:, :cin] @ z.reshape(cin, -1)
    for i, op in enumerate(stage.node_ops[1:], start=1):
        rows = stage._rows(i)
        zi = op(agg[rows].view(cout, *z.shape[1:]))
        agg = agg + dense[:, rows] @ zi.reshape(cout, -1)
    return agg[stage._rows(stage.levels)].view(cout, *z.shape[1:])


@pytest.mark.parametrize("selection", ["dnw", "random"])
def test_dense_stage_equals_its_former_dense_path(selection):
    torch.manual_seed(0)
    options = {"seed": 1} if selection == "random" else {}
    stage = DNWStage(4, 6, 2, 3, WiringSpec(40, selection, impl="dense", selection_options=options))
    x = torch.randn(4, 2, 8, 8, dtype=torch.float64)
    stage = stage.double()
    out = stage(x)
    grads = torch.autograd.grad(out.square().sum(), [stage.conv.edge_weight])
    ref = _forward_dense_before_the_split(stage, x)
    ref_grads = torch.autograd.grad(ref.square().sum(), [stage.conv.edge_weight])
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads[0], ref_grads[0], rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------- the stage as a LevelExecutor


def _former_stage_forward(stage: DNWStage, x: torch.Tensor) -> torch.Tensor:
    """DNWStage.forward before the stage was a LevelExecutor, kept as the oracle: every
    level's aggregation over all N rows, added to the running sum, the last level read."""
    agg = stage.conv(stage.node_ops[0](x), group=0)
    for i, op in enumerate(stage.node_ops[1:], start=1):
        agg = agg + stage.conv(op(agg[stage._rows(i)]), group=i)
    return agg[stage._rows(stage.levels)]


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("impl", ["sparse", "scatter", "dense"])
def test_stage_forward_equals_the_former_level_loop(impl, train):
    torch.manual_seed(0)
    stage = DNWStage(4, 5, stride=2, levels=3, spec=WiringSpec(30, impl=impl)).double().train(train)
    former = copy.deepcopy(stage)
    x = torch.randn(4, 2, 7, 7, dtype=torch.double)
    g = torch.randn(5, 2, 4, 4, dtype=torch.double)
    results = []
    for module, fn in ((stage, DNWStage.forward), (former, _former_stage_forward)):
        xi = x.clone().requires_grad_()
        out = fn(module, xi)
        (out * g).sum().backward()
        grads = [p.grad for p in module.parameters()]
        results.append((out.detach(), xi.grad, grads))
        with torch.no_grad():  # the in-place inference path
            results[-1] += (fn(module, x),)
    (out, gx, gp, nograd), (ref, rx, rp, ref_nograd) = results
    assert out.shape == (5, 2, 4, 4)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(nograd, ref_nograd)
    torch.testing.assert_close(gx, rx)
    assert len(gp) == len(rp) == 1 + 3 * 3  # edge weights; BN weight, BN bias, depthwise x 3
    for a, b in zip(gp, rp, strict=True):
        torch.testing.assert_close(a, b)


def test_stage_with_one_level_is_one_product():
    torch.manual_seed(0)
    stage = DNWStage(3, 4, stride=1, levels=1, spec=WiringSpec(8)).double()
    x = torch.randn(3, 2, 5, 5, dtype=torch.double)
    torch.testing.assert_close(stage(x), _former_stage_forward(stage, x))
    assert len(stage.node_ops) == 1


def test_seeded_stage_draws_its_parameters_in_the_former_order():
    """A seeded stage starts from the same weights as before (wiring layer first, then the
    input nodes' and the levels' depthwise operations)."""
    from dnwgraph import WiringConv, block_dag

    torch.manual_seed(7)
    stage = DNWStage(4, 5, stride=2, levels=3, spec=WiringSpec(30))
    torch.manual_seed(7)
    wiring = block_dag([4, 5, 5, 5])
    conv = WiringConv(wiring, 30, source_groups=wiring.levels()[:-1], fan_in="candidates")
    ops = [DepthwiseNodeOp(4, 2), DepthwiseNodeOp(5), DepthwiseNodeOp(5)]
    assert torch.equal(stage.conv.edge_weight, conv.edge_weight)
    assert stage.conv.fan_in == "candidates"
    for new, old in zip(stage.node_ops, ops, strict=True):
        assert torch.equal(new.conv.weight, old.conv.weight)


def test_stage_node_ops_have_no_alias():
    stage = DNWStage(4, 5, stride=2, levels=3, spec=WiringSpec(30))
    assert not hasattr(stage, "input_op") and not hasattr(stage, "level_ops")
    assert [op.stride for op in stage.node_ops] == [2, 1, 1]
    assert all(k.split(".")[0] in ("conv", "node_ops") for k in stage.state_dict())


def test_stage_sparsified_and_compacted():
    from dnwgraph.models import sparsify

    torch.manual_seed(0)
    model = MobileNetV1DNW(0.5, num_classes=3, stages=TINY).eval()
    x = torch.randn(2, 3, 32, 32)
    small = model.compact_wirings()
    torch.testing.assert_close(small(x), model(x))
    assert small.stages[1].conv.num_edges == small.stages[1].conv.k
    sparsify(model, 0.5, include=["stages.*.node_ops.*.conv"])
    dw = model.stages[1].node_ops[0].conv.weight
    assert int((dw != 0).sum()) == dw.numel() // 2
    assert torch.isfinite(model(x)).all()


# --------------------------------------------------------------------------- width


def test_width_is_the_keyword():
    """``width`` is the width d of the "x d" budget (``ratio``, its name up to 0.2, is an
    edge budget everywhere else and no alias of it)."""
    new = MobileNetV1DNW(width=0.5, stages=TINY)
    assert new.width == 0.5
    assert [s.conv.k for s in new.stages] == [stage_budget(*s[:2], s[3], 0.5) for s in TINY]
    assert MobileNetV1DNW(0.4, stages=TINY).width == 0.4  # positional: the width
    assert MobileNetV1DNW(stages=TINY).width == 0.225
    with pytest.raises(TypeError, match="'ratio'"):
        MobileNetV1DNW(ratio=0.5, stages=TINY)


def test_presets_take_width_and_refuse_the_former_ratio():
    assert create_model("mobilenetv1_dnw_x3", stages=TINY).width == 0.3
    assert create_model("mobilenetv1_dnw_x3", width=0.4, stages=TINY).width == 0.4
    with pytest.raises(
        DNWGraphError, match=r"unknown keyword 'ratio' for model 'mobilenetv1_dnw_x3'"
    ):
        create_model("mobilenetv1_dnw_x3", ratio=0.4, stages=TINY)


@pytest.mark.parametrize("name", ["mobilenetv1_dnw_x3", "mobilenetv1_random_x225"])
def test_presets_refuse_node_op_options_they_would_ignore(name):
    """Their stages are MobileNet's layers: node-op options would be accepted and unused."""
    refused = r"^MobileNetV1DNW takes no 'node_op_options': .* \(got \{'eps': 0\.001\}\)$"
    with pytest.raises(DNWGraphError, match=refused):
        create_model(name, node_op_options={"eps": 1e-3}, stages=TINY)
    spec = WiringSpec(1.0, node_op_options={"eps": 1e-3})  # the class refuses it too
    with pytest.raises(DNWGraphError, match=refused):
        MobileNetV1DNW(spec=spec, stages=TINY)
