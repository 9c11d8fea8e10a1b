"""WiringConv under torch.compile (one opaque operator: whole graphs, fullgraph=True),
torch.jit.trace (inference, the selection fixed at trace time), torch.jit.script (one clear
error) and second derivatives (a clear error on the fused path, exact on scatter/dense).

Most compiled tests use the ``aot_eager`` backend: it runs Dynamo and AOTAutograd, where graph
breaks and fullgraph failures happen, in a second; one test runs the default Inductor."""

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F

from dnwgraph import StaticNeuralGraph, WiringConv, WiringSpec, block_dag
from dnwgraph.errors import DNWGraphError
from dnwgraph.nn.kernels.fused import NO_DOUBLE_BACKWARD


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def levels_layer(dtype=torch.float64, **kwargs):
    torch.manual_seed(0)
    wiring = block_dag([3, 4, 4, 3])
    groups = [torch.arange(0, 3), torch.arange(3, 7), torch.arange(7, 11)]
    return WiringConv(wiring, ratio=12, source_groups=groups, **kwargs).to(dtype)


def chain(conv, x):
    """What LevelExecutor does: level by level, only the rows after the level, sums fused."""
    done, rest = [], x
    for i, (lo, hi) in enumerate([(0, 3), (3, 7), (7, 11)]):
        done.append(rest[: hi - lo])
        rest = conv(torch.tanh(rest[: hi - lo]), group=i, first_row=hi, add_to=rest[hi - lo :])
    return (torch.cat([*done, rest]) ** 2).sum()


def small_model(readout="max"):
    # "mean" is linear: eager pools the output nodes before the sums, compiled code does not
    torch.manual_seed(0)
    wiring = block_dag([4, 6, 6, 4])
    return StaticNeuralGraph(
        wiring, WiringSpec(20, node_op="conv1d"), num_classes=3, readout=readout
    )


def train_steps(model, fn, x, y, steps=3):
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    losses, grads = [], []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(fn(x), y)
        loss.backward()
        losses.append(loss.detach())
        grads.append(model.conv.edge_weight.grad.clone())
        opt.step()
    return losses, grads


def test_compiled_layer_matches_eager_across_weight_updates():
    eager = levels_layer()
    compiled_conv = copy.deepcopy(eager)
    fn = torch.compile(chain, backend="aot_eager", fullgraph=True)
    x = torch.randn(14, 5, dtype=torch.float64)
    for _ in range(3):  # the weights change, so the selection does (inside the compiled graph)
        xe, xc = x.clone().requires_grad_(), x.clone().requires_grad_()
        le, lc = chain(eager, xe), fn(compiled_conv, xc)
        le.backward()
        lc.backward()
        torch.testing.assert_close(lc, le)
        torch.testing.assert_close(xc.grad, xe.grad)
        torch.testing.assert_close(compiled_conv.edge_weight.grad, eager.edge_weight.grad)
        for conv in (eager, compiled_conv):
            with torch.no_grad():
                conv.edge_weight -= conv.edge_weight.grad
            conv.edge_weight.grad = None
        assert torch.equal(compiled_conv.active_mask(), eager.active_mask())
    assert compiled_conv.weight_updates == eager.weight_updates == 4  # the last: active_mask


@pytest.mark.parametrize("readout", ["max", "mean"])
def test_compiled_model_training_fullgraph_matches_eager(readout):
    eager = small_model(readout)
    compiled_model = copy.deepcopy(eager)
    fn = torch.compile(compiled_model, backend="aot_eager", fullgraph=True)
    x, y = torch.randn(8, 4, 6), torch.randint(0, 3, (8,))
    le, ge = train_steps(eager, eager, x, y)
    lc, gc = train_steps(compiled_model, fn, x, y)
    torch.testing.assert_close(lc, le)
    for a, b in zip(gc, ge, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(compiled_model.conv.edge_weight, eager.conv.edge_weight)


def test_compiled_mobilenet_stage_from_its_input_nodes_fullgraph():
    """A MobileNet stage runs the chain from the input nodes' features only (a strided first
    level): whole under the compiler, the same outputs and gradients."""
    from dnwgraph.models.mobilenet import DNWStage

    torch.manual_seed(0)
    eager = DNWStage(4, 5, stride=2, levels=3, spec=WiringSpec(30)).double()
    compiled_stage = copy.deepcopy(eager)
    fn = torch.compile(compiled_stage, backend="aot_eager", fullgraph=True)
    x = torch.randn(4, 2, 7, 7, dtype=torch.float64)
    xe, xc = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_e, out_c = eager(xe), fn(xc)
    out_e.square().sum().backward()
    out_c.square().sum().backward()
    torch.testing.assert_close(out_c, out_e)
    torch.testing.assert_close(xc.grad, xe.grad)
    torch.testing.assert_close(compiled_stage.conv.edge_weight.grad, eager.conv.edge_weight.grad)


def test_compiled_inference_with_inductor_fullgraph():
    model = small_model().eval()
    fn = torch.compile(model, fullgraph=True)  # the default backend: Inductor
    x = torch.randn(5, 4, 6)
    with torch.no_grad():
        torch.testing.assert_close(fn(x), model(x))
        with torch.no_grad():
            model.conv.edge_weight.mul_(-1.5)  # new weights: the operator selects again
        torch.testing.assert_close(fn(x), model(x))


def test_compiled_random_masks_reach_their_own_backward():
    """Targeted dropout draws a mask per call: the backward of a compiled graph must use the
    plan of its own forward call, not the current one."""
    eager = levels_layer(selection="td", drop_rate=0.5)
    compiled_conv = copy.deepcopy(eager)
    fn = torch.compile(chain, backend="aot_eager", fullgraph=True)
    x = torch.randn(14, 5, dtype=torch.float64)
    torch.manual_seed(3)
    chain(eager, x).backward()
    torch.manual_seed(3)
    fn(compiled_conv, x).backward()
    torch.testing.assert_close(compiled_conv.edge_weight.grad, eager.edge_weight.grad)


def test_compiled_pyg_call_checks_the_edge_index_when_it_runs():
    conv = WiringConv(block_dag([2, 3]), 4)
    fn = torch.compile(lambda x, ei: conv(x, ei), backend="aot_eager", fullgraph=True)
    x = torch.randn(5, 2)
    torch.testing.assert_close(fn(x, conv.edge_index.flip(1)), conv(x))
    with pytest.raises(ValueError, match=r"edge \(1, 0\) at position 5 is not a candidate"):
        fn(x, torch.tensor([[0, 0, 0, 1, 1, 1], [2, 3, 4, 2, 3, 0]]))


@pytest.mark.parametrize("readout", ["max", "mean"])
def test_trace_fixes_the_selection_and_matches_eager(readout):
    model = small_model(readout).eval()
    x = torch.randn(5, 4, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace is deprecated in torch 2.13
        traced = torch.jit.trace(model, x)
    with torch.no_grad():
        for inputs in (x, torch.randn(5, 4, 6)):
            torch.testing.assert_close(traced(inputs), model(inputs))
    assert "sparse" not in str(traced.inlined_graph)  # plain gathers and index_add


def test_trace_of_a_layer_in_half_precision_sums_in_float32():
    conv = WiringConv(block_dag([3, 4, 3]), ratio=10).to(torch.bfloat16).eval()
    x = torch.randn(10, 6, dtype=torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(conv, x)
    assert torch.equal(traced(x), conv(x))


def test_script_is_one_clear_error():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for module in (WiringConv(block_dag([2, 3]), 4), small_model()):
            with pytest.raises(DNWGraphError, match="torch.jit.script cannot compile WiringConv"):
                torch.jit.script(module)


def test_second_derivative_of_the_fused_path_is_a_clear_error():
    conv = levels_layer(impl="sparse")
    x = torch.randn(14, 3, dtype=torch.float64, requires_grad=True)
    (grad_x,) = torch.autograd.grad((conv(x) ** 2).sum(), x, create_graph=True)
    with pytest.raises(DNWGraphError, match="no second derivative"):
        grad_x.sum().backward()
    assert "impl='scatter'" in NO_DOUBLE_BACKWARD
    # first derivatives under create_graph=True are the ordinary ones
    conv2 = levels_layer()
    x2 = x.detach().clone().requires_grad_()
    (plain,) = torch.autograd.grad((conv2(x2) ** 2).sum(), x2)
    torch.testing.assert_close(grad_x, plain)


@pytest.mark.parametrize("impl", ["scatter", "dense"])
def test_second_derivatives_of_scatter_and_dense(impl):
    # dnw_no_update: the gradient is the true derivative (straight-through is not, by design)
    conv = levels_layer(impl=impl, selection="dnw_no_update")
    x = torch.randn(14, 2, dtype=torch.float64, requires_grad=True)
    w = conv.edge_weight.detach().clone().requires_grad_()

    def fn(x, w):
        return torch.func.functional_call(conv, {"edge_weight": w}, (x,)) ** 2

    torch.autograd.gradgradcheck(fn, (x, w))
