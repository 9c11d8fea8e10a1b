"""The PyTorch tools of docs/interop.md on the public API, as a new user calls them: a preset
traced quietly, a sparsified CNN compiled without graph breaks, presets and their compact
forms exported with ``torch.export``, ONNX export of a compact model (TorchScript-based), and
one clear error where the ONNX exporter cannot follow."""

import io
import warnings

import pytest
import torch
from torch import nn

import dnwgraph
from dnwgraph.errors import DNWGraphError

PRESETS = ["mnist1d_static", "mnist1d_discrete", "tiny_static"]


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def preset(name):
    torch.manual_seed(0)
    return dnwgraph.create_model(name).eval()


def batch(model, size=2):
    return torch.randn(size, *model.input_shape)


def sparse_cnn(scope="per_layer"):
    torch.manual_seed(0)
    cnn = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )
    return dnwgraph.sparsify(cnn, 0.1, scope=scope)


@pytest.mark.parametrize("name", PRESETS)
def test_trace_of_a_preset_warns_only_of_torch_deprecations(name, capfd):
    model = preset(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traced = torch.jit.trace(model, batch(model))
    tracer = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    assert tracer == []
    # what is left: torch 2.13 deprecating torch.jit.trace itself (trace, trace_method x2)
    assert len(caught) <= 3
    assert capfd.readouterr().err == ""
    x = batch(model, 5)  # another batch size than the trace's
    torch.testing.assert_close(traced(x), model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("scope", ["per_layer", "model"])
def test_compile_of_a_sparsified_cnn_has_no_graph_break(scope, capfd):
    model = sparse_cnn(scope)
    x = torch.randn(2, 1, 8, 8)
    explained = torch._dynamo.explain(model)(x)
    assert (explained.graph_break_count, explained.graph_count) == (0, 1)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    assert capfd.readouterr().err == ""
    torch.testing.assert_close(out, model(x))
    out.square().sum().backward()
    compiled_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(x).square().sum().backward()
    for got, want in zip(compiled_grads, (p.grad for p in model.parameters()), strict=True):
        torch.testing.assert_close(got, want)
    with torch.no_grad():  # new weights: the compiled graph selects again, no recompilation
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    torch.testing.assert_close(compiled(x), model(x))


@pytest.mark.parametrize("name", PRESETS)
def test_export_of_a_preset_gives_the_eager_outputs(name):
    model = preset(name)
    x = batch(model)
    program = torch.export.export(model, (x,))
    torch.testing.assert_close(program.module()(x), model(x))


def test_export_of_a_compact_model_and_a_sparsified_cnn_gives_the_eager_outputs():
    small = dnwgraph.compact(preset("mnist1d_static"))
    x = batch(small)
    torch.testing.assert_close(torch.export.export(small, (x,)).module()(x), small(x))
    cnn = sparse_cnn().eval()
    x = torch.randn(2, 1, 8, 8)
    program = torch.export.export(cnn, (x,))
    torch.testing.assert_close(program.module()(x), cnn(x))
    # the top-k is part of the program (one selection per sparsified layer), not a constant
    targets = [str(node.target) for node in program.graph.nodes]
    assert targets.count("aten.kthvalue.default") == 3
    assert (cnn[0].weight != 0).sum().item() == 7  # 10% of 72 weights


def test_onnx_export_by_torch_export_is_one_clear_error(monkeypatch):
    # torch.onnx.export(dynamo=True) runs torch.export inside its export flag (it needs
    # onnxscript, which the tests do not install): the flag set, the layer refuses
    model = dnwgraph.compact(preset("mnist1d_static"))
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    with pytest.raises(DNWGraphError, match=r"dynamo=False"):
        torch.export.export(model, (batch(model),))


def test_onnx_export_of_a_compact_model_runs_in_onnx():
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    model = dnwgraph.compact(preset("mnist1d_static"))
    x = batch(model)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's notes on the TorchScript-based exporter
        torch.onnx.export(model, (x,), buffer, dynamo=False, input_names=["x"])
    proto = onnx.load_from_string(buffer.getvalue())
    assert "ScatterElements" in {node.op_type for node in proto.graph.node}
    (out,) = ReferenceEvaluator(proto).run(None, {"x": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(out), model(x), atol=1e-5, rtol=1e-5)
