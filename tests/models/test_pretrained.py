import json

import pytest
import torch
from torch import nn

import dnwgraph
from dnwgraph import Wiring, WiringSpec, create_model, list_models
from dnwgraph.models import (
    ContinuousTimeNeuralGraph,
    DiscreteTimeNeuralGraph,
    MobileNetV1,
    MobileNetV1DNW,
    StaticNeuralGraph,
    from_pretrained,
    register_model,
    save_pretrained,
)
from dnwgraph.models._graph import signal_stem

pytest.importorskip("safetensors")

# a cheap fixed-step solver keeps the continuous models fast; the solver is a saved kwarg too
FAST = {"solver": "euler", "step_size": 0.5}


def input_for(name):
    return torch.randn(1, 40) if name.startswith("mnist1d") else torch.randn(1, 3, 32, 32)


# the MobileNetV1-DNW presets at full size hold millions of candidate edges (~190 MB files);
# two small stages exercise the same code, and a tuple keyword argument on the way
SMALL_STAGES = ((4, 6, 1, 1), (6, 8, 2, 2))


def build(name, **kwargs):
    torch.manual_seed(0)
    if name.endswith("continuous"):
        pytest.importorskip("torchdiffeq")
        kwargs = {**FAST, **kwargs}
    if name.startswith(("mobilenetv1_dnw", "mobilenetv1_random")):
        kwargs = {"stages": SMALL_STAGES, **kwargs}
    return create_model(name, **kwargs)


PRESETS = [n for n in list_models() if n.startswith(("mnist1d_", "tiny_", "mobilenetv1_"))]


def test_presets_cover_the_builtin_registry():
    assert len(PRESETS) == 15  # mnist1d_randwire included


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_round_trips(name, tmp_path):
    model = build(name).eval()
    folder = model.save_pretrained(tmp_path / name)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    back = type(model).from_pretrained(folder)
    assert type(back) is type(model) and not back.training
    a, b = model.state_dict(), back.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    x = input_for(name)
    with torch.no_grad():
        assert torch.equal(back(x), model(x))


def test_config_is_hugging_face_shaped_json(tmp_path):
    model = create_model("mnist1d_static", selection="random", seed=3, num_classes=4)
    folder = save_pretrained(model, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    assert config["format"] == "dnwgraph-pretrained/2" and config["model_type"] == "dnwgraph"
    assert config["architectures"] == ["StaticNeuralGraph"] and config["name"] == "mnist1d_static"
    assert config["class"] is None and config["args"] == [] and config["torch_dtype"] == "float32"
    assert config["kwargs"] == {"selection": "random", "seed": 3, "num_classes": 4}
    # the weights read back with plain safetensors, the keys of the state dict
    import hashlib

    from safetensors.torch import load_file

    data = (folder / "model.safetensors").read_bytes()
    assert config["weights_sha256"] == hashlib.sha256(data).hexdigest()
    rest = {k: v for k, v in config.items() if k != "config_sha256"}
    canonical = json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()
    assert config["config_sha256"] == hashlib.sha256(canonical).hexdigest()
    tensors = load_file(folder / "model.safetensors")
    assert tensors.keys() == model.state_dict().keys()
    assert torch.equal(tensors["executor.conv.edge_weight"], model.conv.edge_weight.detach())


def test_tensor_kwargs_and_fixed_masks_round_trip(tmp_path):
    torch.manual_seed(0)
    mask = torch.zeros(41_984, dtype=torch.bool)
    mask[torch.randperm(41_984)[:2048]] = True
    model = create_model("mnist1d_static", selection="fixed", mask=mask).eval()
    back = from_pretrained(save_pretrained(model, tmp_path))
    assert torch.equal(back.conv.active_mask(), mask)
    x = torch.randn(3, 40)
    with torch.no_grad():
        assert torch.equal(back(x), model(x))


def test_train_load_model_reads_pretrained_folders(tmp_path):
    model = create_model("mnist1d_discrete", selection="random", seed=1).eval()
    model.save_pretrained(tmp_path)
    back = dnwgraph.load_model(tmp_path)
    x = torch.randn(2, 40)
    with torch.no_grad():
        assert torch.equal(back(x), model(x))


def test_user_registered_factory_round_trips(tmp_path):
    @register_model("test_pretrained_mlp")
    def _mlp(hidden: int = 3) -> nn.Module:
        return nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    model = create_model("test_pretrained_mlp", hidden=5)
    back = from_pretrained(save_pretrained(model, tmp_path))
    x = torch.randn(4, 2)
    assert back[0].out_features == 5 and torch.equal(back(x), model(x))


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="built by dnwgraph.create_model or by one of dnwgraph"):
        save_pretrained(nn.Linear(2, 2), tmp_path / "a")
    (tmp_path / "c").mkdir()
    with pytest.raises(ValueError, match="its config.json is missing"):
        from_pretrained(tmp_path / "c")
    folder = create_model("mobilenetv1_x25").save_pretrained(tmp_path / "d")
    with pytest.raises(ValueError, match="holds a MobileNetV1, not a StaticNeuralGraph"):
        StaticNeuralGraph.from_pretrained(folder)
    assert isinstance(MobileNetV1.from_pretrained(folder), MobileNetV1)
    (folder / "config.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="expected format 'dnwgraph-pretrained/2', got 'other'"):
        from_pretrained(folder)
    model = create_model("mnist1d_static")
    model.model_spec["kwargs"]["stem"] = nn.Identity()
    with pytest.raises(ValueError, match="'kwargs.stem' must be JSON, a tensor, a Wiring"):
        save_pretrained(model, tmp_path / "e")


def _same_outputs(model, back, x):
    model.eval()
    with torch.no_grad():
        return torch.equal(back(x), model(x))


def test_a_model_built_from_its_class_round_trips(tmp_path):
    """Positional and keyword arguments, a Wiring with edge weights and a tensor among the
    selection options are recorded and rebuilt; the config names the class."""
    torch.manual_seed(0)
    wiring = Wiring(
        [(0, 2), (1, 2), (2, 3), (0, 3), (1, 3)],
        edge_weight=[0.5, -1.0, 2.0, 0.25, 1.5],
    )
    mask = torch.tensor([True, False, True, True, False])
    spec = WiringSpec(3, "fixed", node_op="neuron", selection_options={"mask": mask})
    model = StaticNeuralGraph(wiring, spec, num_classes=3)
    folder = model.save_pretrained(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    assert config["name"] is None and config["class"] == "StaticNeuralGraph"
    assert config["args"][0]["$wiring"]["num_nodes"] == 4 and "$spec" in str(config["args"][1])
    assert config["args"][1]["$spec"]["selection_options"]["mask"] == {
        "$tensor": "__args__.args.1.selection_options.mask"
    }
    back = StaticNeuralGraph.from_pretrained(folder)
    assert torch.equal(back.wiring.edge_index, wiring.edge_index)
    assert torch.equal(back.wiring.edge_weight, wiring.edge_weight)
    assert torch.equal(back.conv.active_mask(), mask)
    assert _same_outputs(model, back, torch.randn(5, 2))


@pytest.mark.parametrize("kind", ["discrete", "continuous", "mobilenet_dnw", "mobilenet"])
def test_every_model_class_round_trips_when_built_directly(kind, tmp_path):
    torch.manual_seed(0)
    wiring = dnwgraph.complete(6, input_nodes=[0, 1], output_nodes=[4, 5])
    if kind == "discrete":
        model = DiscreteTimeNeuralGraph(wiring, WiringSpec(10, node_op="conv1d"), steps=3)
        x = torch.randn(2, 2, 7)
    elif kind == "continuous":
        pytest.importorskip("torchdiffeq")
        model = ContinuousTimeNeuralGraph(wiring, WiringSpec(10, node_op="conv1d"), **FAST)
        x = torch.randn(2, 2, 7)
    elif kind == "mobilenet_dnw":
        model = MobileNetV1DNW(0.5, spec=WiringSpec(1, "random"), stages=SMALL_STAGES)
        x = torch.randn(2, 3, 32, 32)
    else:
        model = MobileNetV1(0.25)
        x = torch.randn(2, 3, 32, 32)
    back = type(model).from_pretrained(model.save_pretrained(tmp_path))
    assert type(back) is type(model) and _same_outputs(model, back, x)


def test_a_wiring_spec_and_a_dnwgraph_stem_are_arguments_too(tmp_path):
    torch.manual_seed(0)
    wiring = Wiring([(i, j) for i in range(8) for j in range(max(i + 1, 4), 8)])
    spec = WiringSpec(0.5, "random", node_op="conv1d", selection_options={"seed": 4})
    model = StaticNeuralGraph(wiring, spec, stem=signal_stem(4), input_shape=(40,))
    folder = save_pretrained(model, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    assert config["kwargs"]["stem"] == {
        "$stem": {"name": "signal_stem", "kwargs": {"out_channels": 4}}
    }
    assert config["args"][1]["$spec"]["selection_options"] == {"seed": 4}
    assert _same_outputs(model, from_pretrained(folder), torch.randn(3, 40))


def test_a_subgraph_saves_and_loads_with_the_same_outputs(tmp_path):
    torch.manual_seed(0)
    model = create_model("mnist1d_static").eval()
    keep = torch.ones(model.num_nodes, dtype=torch.bool)
    keep[40:80] = False
    small = model.subgraph(keep).eval()
    assert _same_outputs(
        small, from_pretrained(save_pretrained(small, tmp_path)), torch.randn(3, 40)
    )


def test_a_model_changed_after_it_was_built_is_refused_at_save(tmp_path):
    """Its arguments would rebuild another model: refused before anything is written."""
    model = dnwgraph.sparsify(create_model("mnist1d_static"), 0.5)
    with pytest.raises(ValueError, match="changed after it was built.*sparsify"):
        save_pretrained(model, tmp_path / "a")
    assert not (tmp_path / "a").exists()


def test_only_dnwgraph_classes_are_rebuilt_from_a_config(tmp_path):
    class Mine(StaticNeuralGraph):
        pass

    model = Mine(Wiring([(0, 2), (1, 2)]), WiringSpec(2, node_op="neuron"))
    with pytest.raises(ValueError, match="got a Mine from 'test_pretrained'"):
        save_pretrained(model, tmp_path)
    model = StaticNeuralGraph(
        Wiring([(0, 2), (1, 2)]), WiringSpec(2, node_op="neuron"), stem=nn.Identity()
    )
    with pytest.raises(ValueError, match="'kwargs.stem' must be .* a dnwgraph stem .*Identity"):
        save_pretrained(model, tmp_path)


def test_the_saved_dtype_comes_back(tmp_path):
    model = create_model("mnist1d_static", selection="random", seed=0).double().eval()
    back = from_pretrained(save_pretrained(model, tmp_path))
    assert back.head.weight.dtype == torch.float64
    assert _same_outputs(model, back, torch.randn(2, 40, dtype=torch.float64))


def test_save_does_not_move_the_random_generator(tmp_path):
    model = create_model("mnist1d_static")
    torch.manual_seed(1)
    save_pretrained(model, tmp_path)
    after = torch.rand(3)
    torch.manual_seed(1)
    assert torch.equal(torch.rand(3), after)
