"""WiringSpec: checked once, the one argument that carries a wiring's parameters."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import dnwgraph
from dnwgraph import DiscreteTimeNeuralGraph, StaticNeuralGraph, Wiring, WiringSpec
from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.models import list_models
from dnwgraph.models.mobilenet import DNWClassifier, DNWStage, MobileNetV1DNW
from dnwgraph.models.registry import MODELS
from dnwgraph.nn import LevelExecutor, spec

ROOT = Path(dnwgraph.__file__).resolve().parent
WIRING = Wiring([(0, 2), (1, 2), (2, 3), (0, 3), (1, 4), (3, 4)], output_nodes=[4])

#: The wiring bundle: at most one of these names per signature outside the exceptions below.
BUNDLE = {"selection", "scope", "impl", "node_op", "node_op_options", "fan_in", "grad_every"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"selection": "best"}, r"^unknown selection 'best'; choose one of \[.*'dnw'.*\]$"),
        (
            {"node_op": "conv3d"},
            r"^unknown node op 'conv3d'; choose one of \[.*'conv2d'.*\]; did you mean 'conv2d'\?$",
        ),
        ({"scope": "layer"}, r"^'scope' must be one of \['global', 'per_node'\] \(got 'layer'\)$"),
        ({"impl": "fast"}, r"^'impl' must be one of \['auto', .*'sparse'.*\] \(got 'fast'\)$"),
        (
            {"fan_in": "all"},
            r"^'fan_in' must be one of \['selected', 'candidates', None\] \(got 'all'\)$",
        ),
        ({"grad_every": 0}, r"^'grad_every' must be a positive int \(got 0\)$"),
        ({"grad_every": 1.5}, r"^'grad_every' must be a positive int \(got 1.5\)$"),
        ({"grad_every": True}, r"^'grad_every' must be a positive int \(got True\)$"),
        (
            {"selection": "random", "selection_options": {"sed": 1}},
            r"^'selection_options' of selection 'random' must be among \['seed'\] "
            r"\(got \['sed'\]\)$",
        ),
        (
            {"selection_options": {"impl": "dense", "scope": "global"}},
            r"^\['impl', 'scope'\] are fields of the WiringSpec, not 'selection_options' ",
        ),
    ],
)
def test_every_field_is_checked_once_with_a_one_line_error(changes, message):
    with pytest.raises(DNWGraphError, match=message):
        WiringSpec(4, **changes)
    with pytest.raises(DNWGraphError, match=message):  # and again on a copy
        WiringSpec(4).replace(**changes)


def test_options_must_be_mappings():
    with pytest.raises(
        DNWGraphTypeError, match=r"^'node_op_options' must be a mapping .*\(got list\)"
    ):
        WiringSpec(4, node_op_options=[("norm", "none")])
    with pytest.raises(DNWGraphTypeError, match=r"^'selection_options' must be .*\(got int\)"):
        WiringSpec(4, selection_options=3)


@pytest.mark.parametrize(
    ("node_op", "options", "message"),
    [
        ("conv2d", {"epsilon": 1e-5}, r"\['epsilon'\] for node op 'conv2d'; did you mean 'eps'\? "
         r"\(valid: activation, affine, eps, kernel_size, norm, order\)$"),
        ("conv1d", {"dim": 2}, r"\['dim'\] for node op 'conv1d' \(valid: "),  # set by its name
        ("neuron", {"eps": 0.1, 7: 1},
         r"\['eps', 7\] for node op 'neuron' \(valid: activation, bias\)"),
    ],
)  # fmt: skip
def test_an_unknown_node_op_option_is_named_with_the_valid_ones(node_op, options, message):
    """Checked with the spec (a layer or preset built from it), not deep in a constructor."""
    with pytest.raises(DNWGraphTypeError, match=r"^unknown 'node_op_options' " + message):
        WiringSpec(4, node_op=node_op, node_op_options=options)
    assert WiringSpec(4, node_op="conv1d", node_op_options={"eps": 1e-5}).node_op_options


def test_a_users_node_op_is_checked_by_its_own_constructor(monkeypatch):
    """No options: none is valid; ``*args`` is no option; ``**kwargs`` takes any."""
    from dnwgraph.nn.node_ops import NODE_OPS, NodeOp, node_op_options, register_node_op

    monkeypatch.setattr(NODE_OPS, "_entries", dict(NODE_OPS._entries))  # undone after the test

    class Plain(NodeOp):
        def __init__(self, num_nodes): ...

    class Starred(NodeOp):
        def __init__(self, num_nodes, *args, gain=1.0): ...

    class Open(NodeOp):
        def __init__(self, num_nodes, **options): ...

    names = ["_test_plain", "_test_starred", "_test_open"]
    for name, cls in zip(names, (Plain, Starred, Open), strict=True):
        register_node_op(name)(cls)
    assert [node_op_options(n) for n in names] == [[], ["gain"], None]
    with pytest.raises(DNWGraphTypeError, match=r"\['bogus'\] .*\(valid: none\)$"):
        WiringSpec(4, node_op="_test_plain", node_op_options={"bogus": 1})
    with pytest.raises(DNWGraphTypeError, match=r"\['args'\] .*\(valid: gain\)$"):
        WiringSpec(4, node_op="_test_starred", node_op_options={"args": 1})
    assert WiringSpec(4, node_op="_test_open", node_op_options={"x": 1}).node_op_options


def test_conv_kwargs_are_the_wiring_layers_keywords():
    plain = WiringSpec(2, "random", node_op_options=None, selection_options={"seed": 1})
    assert plain.node_op_options == {}
    assert plain.conv_kwargs() == {"scope": None, "impl": "auto", "grad_every": 1, "seed": 1}
    full = WiringSpec(2, scope="per_node", impl="dense", fan_in="candidates", grad_every=3)
    assert full.conv_kwargs() == {
        "scope": "per_node",
        "impl": "dense",
        "fan_in": "candidates",
        "grad_every": 3,
    }
    assert full.replace(impl="scatter").impl == "scatter" and full.impl == "dense"
    with pytest.raises(Exception, match="cannot assign"):
        full.ratio = 3  # type: ignore[misc]
    with pytest.raises(TypeError, match="positional"):  # only the budget and the strategy
        WiringSpec(2, "dnw", None)  # type: ignore[misc]


def test_as_spec_is_gone():
    assert not hasattr(spec, "as_spec") and "as_spec" not in spec.__all__
    with pytest.raises(ImportError):
        from dnwgraph.nn.spec import as_spec  # noqa: F401


@pytest.mark.parametrize(
    "build",
    [
        lambda s: LevelExecutor(WIRING, s),
        lambda s: StaticNeuralGraph(WIRING, s),
        lambda s: DiscreteTimeNeuralGraph(WIRING, s, norm="none", readout="mean"),
        lambda s: DNWStage(4, 6, 2, 2, s),
        lambda s: DNWClassifier(8, 3, s),
    ],
)
def test_the_spec_is_the_one_argument_and_is_kept(build):
    s = WiringSpec(4, node_op="neuron", impl="scatter")
    assert build(s).spec.impl == "scatter"
    with pytest.raises(DNWGraphTypeError, match=r"'spec' must be a WiringSpec.*\(got int 4\)"):
        build(4)


def test_the_models_keep_their_spec_and_pass_it_on():
    s = WiringSpec(3, "random", node_op="neuron", selection_options={"seed": 2}, grad_every=2)
    static = StaticNeuralGraph(WIRING, s, num_classes=3)
    assert static.spec == s and static.executor.spec == s
    assert (static.conv.grad_every, static.conv.selection.seed, static.conv.k) == (2, 2, 3)
    assert type(static.executor.node_ops[0]).__name__ == "NeuronNodeOp"
    rec = DiscreteTimeNeuralGraph(WIRING, s, norm="none", readout="mean")
    assert rec.spec == s and rec.step.spec == s and rec.conv.grad_every == 2


def test_the_mobilenet_wirings_start_at_the_reference_scale_unless_told():
    assert DNWStage(4, 6, 2, 2, WiringSpec(20)).conv.fan_in == "candidates"
    assert DNWStage(4, 6, 2, 2, WiringSpec(20, fan_in="selected")).conv.fan_in == "selected"
    assert DNWClassifier(8, 3, WiringSpec(0.5)).conv.fan_in == "candidates"
    tiny = ((4, 6, 1, 1), (6, 8, 2, 2))
    model = MobileNetV1DNW(0.5, spec=WiringSpec(1.0, "random", impl="dense"), stages=tiny)
    assert [(s.conv.impl, s.conv.selection.name, s.conv.fan_in) for s in model.stages] == [
        ("dense", "random", "candidates")
    ] * 2
    # the budgets come from the width, whatever the spec's ratio
    assert [s.conv.k for s in model.stages] == [
        s.conv.k for s in MobileNetV1DNW(0.5, stages=tiny).stages
    ]


def _registered_factories() -> set[tuple[str, str, int]]:
    """(file, name, first line with its decorators) of every registered model factory."""
    found = set()
    for name in list_models():
        fn = inspect.unwrap(MODELS.get(name))
        if inspect.isfunction(fn):
            first = inspect.getsourcelines(fn)[1]
            found.add((str(Path(fn.__code__.co_filename).resolve()), fn.__name__, first))
    return found


def _signatures(path: Path):
    """Every function of a module: (qualified name, first line, its parameter names)."""

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                yield from walk(child, [*prefix, child.name])
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                a = child.args
                names = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs}
                first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                yield ".".join([*prefix, child.name]), first, names
                yield from walk(child, [*prefix, child.name])
            else:
                yield from walk(child, prefix)

    yield from walk(ast.parse(path.read_text()), [])


def test_no_signature_spells_out_the_bundle():
    """The wiring's parameters travel as one WiringSpec: no function of ``models/`` or ``nn/``
    takes two of them, except the spec itself, the leaf layer's keyword constructor (and its
    helper), the registered presets, whose users give flat keywords, and ``sparsify``, whose
    ``scope`` is another concept (one budget per layer or per model, not WiringSpec's per
    node) and which builds no WiringConv."""
    allowed = {"WiringConv.__init__", "WiringConv._make_selection", "sparsify"}
    presets = _registered_factories()
    # the graph presets and the MobileNet ones (one closure for all): the scan sees them
    assert {name for _, name, _ in presets} >= {"tiny_static", "mnist1d_continuous", "factory"}
    offenders = []
    for sub in ("models", "nn"):
        for path in sorted((ROOT / sub).rglob("*.py")):
            for qualname, first, names in _signatures(path):
                bundle = sorted(names & BUNDLE)
                key = (str(path.resolve()), qualname.rsplit(".", 1)[-1], first)
                exempt = qualname in allowed or qualname.startswith("WiringSpec.")
                if len(bundle) >= 2 and not exempt and key not in presets:
                    offenders.append(f"{path.relative_to(ROOT)}::{qualname} {bundle}")
    assert offenders == []


def test_the_scan_sees_a_spelt_out_bundle(tmp_path):
    """The scan above can fail: a function taking ``selection`` and ``impl`` is found."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "class M:\n"
        "    def __init__(self, wiring, ratio, selection='dnw', *, impl='auto'):\n"
        "        pass\n"
    )
    assert [(q, sorted(n & BUNDLE)) for q, _, n in _signatures(bad)] == [
        ("M.__init__", ["impl", "selection"])
    ]
