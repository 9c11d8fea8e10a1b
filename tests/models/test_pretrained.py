import json
import re

import pytest
import torch
from torch import nn

import dnwgraph
from dnwgraph import WiringSpec, create_model, list_models
from dnwgraph.models import (
    MobileNetV1,
    StaticNeuralGraph,
    from_pretrained,
    register_model,
    save_pretrained,
)

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
    assert len(PRESETS) == 14


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
    assert config["format"] == "dnwgraph-pretrained/1" and config["model_type"] == "dnwgraph"
    assert config["architectures"] == ["StaticNeuralGraph"] and config["name"] == "mnist1d_static"
    assert config["kwargs"] == {"selection": "random", "seed": 3, "num_classes": 4}
    # the weights read back with plain safetensors, the keys of the state dict
    from safetensors.torch import load_file

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
    with pytest.raises(ValueError, match="built by dnwgraph.create_model"):
        save_pretrained(nn.Linear(2, 2), tmp_path / "a")
    direct = StaticNeuralGraph(dnwgraph.Wiring([(0, 1)]), WiringSpec(1, node_op="neuron"))
    with pytest.raises(ValueError, match="got a StaticNeuralGraph without 'model_spec'"):
        direct.save_pretrained(tmp_path / "b")
    with pytest.raises(ValueError, match="not a folder.*downloads nothing"):
        from_pretrained("someone/some-model")
    (tmp_path / "c").mkdir()
    with pytest.raises(ValueError, match=r"missing \['config.json', 'model.safetensors'\]"):
        from_pretrained(tmp_path / "c")
    folder = create_model("mobilenetv1_x25").save_pretrained(tmp_path / "d")
    with pytest.raises(ValueError, match="holds a MobileNetV1, not a StaticNeuralGraph"):
        StaticNeuralGraph.from_pretrained(folder)
    assert isinstance(MobileNetV1.from_pretrained(folder), MobileNetV1)
    (folder / "config.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="expected format 'dnwgraph-pretrained/1', got 'other'"):
        from_pretrained(folder)
    model = create_model("mnist1d_static")
    model.model_spec["kwargs"]["stem"] = nn.Identity()
    with pytest.raises(ValueError, match="'stem' must be JSON or a tensor"):
        save_pretrained(model, tmp_path / "e")


@pytest.mark.parametrize(
    "name, renamed",
    [
        ("mnist1d_static", lambda k: k.replace("executor.", "graph.", 1)),
        (
            "mobilenetv1_dnw_x225",
            lambda k: re.sub(
                r"node_ops\.(\d+)\.",
                lambda m: "input_op." if m[1] == "0" else f"level_ops.{int(m[1]) - 1}.",
                k,
            ),
        ),
    ],
)
def test_a_folder_written_with_the_former_module_names_loads(name, renamed, tmp_path):
    """Folders saved when the static model's executor was ``graph`` and the MobileNet stages
    held ``input_op`` / ``level_ops`` load into today's models, with the same outputs."""
    from safetensors.torch import load_file, save_file

    model = build(name).eval()
    folder = save_pretrained(model, tmp_path)
    tensors = load_file(folder / "model.safetensors")
    former = {renamed(k): v for k, v in tensors.items()}
    assert former.keys() != tensors.keys()
    save_file(former, folder / "model.safetensors", metadata={"format": "pt"})
    back = from_pretrained(folder)
    x = input_for(name)
    with torch.no_grad():
        assert torch.equal(back(x), model(x))
