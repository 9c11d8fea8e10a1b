"""A model saved before a preset's default changed is rebuilt with the default it had.

The oracle of every test is the model built with the old default spelt out by hand
(``node_op_options={"eps": 0.1}``) and the same state dict: the migrated model must compute
exactly what it computes, and the model built with today's defaults must not.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from dnwgraph import __version__, create_model
from dnwgraph.errors import DNWGraphError
from dnwgraph.models import _folder, from_pretrained, migrations, save_pretrained
from dnwgraph.models.migrations import Migration, migrate_kwargs, parse_version
from dnwgraph.models.presets import PRESET_NODE_OPS
from dnwgraph.nn.node_ops import NORM_EPS
from dnwgraph.runs.checkpoint import (
    FORMAT,
    CheckpointError,
    built_by,
    load_checkpoint,
    load_model,
    new_checkpoint,
    save_checkpoint,
)

pytest.importorskip("safetensors")


def norm_eps(model: nn.Module) -> set[float]:
    return {m.eps for m in model.modules() if isinstance(m, nn.modules.instancenorm._InstanceNorm)}


@pytest.fixture(scope="module")
def tiny() -> nn.Module:
    torch.manual_seed(0)
    return create_model("tiny_static", selection="random", seed=1).eval()


@pytest.fixture(scope="module")
def old_oracle(tiny) -> nn.Module:
    """What 0.2 built for ``tiny_static`` (its default epsilon spelt out), with ``tiny``'s
    state."""
    model = create_model(
        "tiny_static", selection="random", seed=1, node_op_options={"eps": NORM_EPS}
    ).eval()
    model.load_state_dict(tiny.state_dict())
    return model


def same(a: nn.Module, b: nn.Module) -> bool:
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def test_the_presets_node_op_defaults_are_built_and_lie_under_the_users():
    assert PRESET_NODE_OPS == {"tiny_static": {"eps": 1e-5}}
    assert norm_eps(create_model("tiny_static")) == {1e-5}
    relu = create_model("tiny_static", node_op_options={"activation": "relu"})
    assert norm_eps(relu) == {1e-5}
    assert type(relu.executor.node_ops[0].act).__name__ == "ReLU"
    assert norm_eps(create_model("tiny_static", node_op_options={"eps": 0.5})) == {0.5}
    # the presets not named keep ChannelNodeOp's default, and the spec what the user passed
    assert norm_eps(create_model("mnist1d_static")) == {NORM_EPS}
    assert create_model("tiny_static").model_spec == {"name": "tiny_static", "kwargs": {}}


def test_migrate_kwargs_adds_the_old_default_under_the_users_own():
    old = "0.2.0"
    assert migrate_kwargs("tiny_static", {}, old) == {"node_op_options": {"eps": 0.1}}
    assert migrate_kwargs("tiny_static", {"node_op_options": None}, old) == {
        "node_op_options": {"eps": 0.1}
    }
    mine = {"node_op_options": {"eps": 0.3, "activation": "relu"}, "seed": 2}
    assert migrate_kwargs("tiny_static", mine, old) == mine
    # not a mapping: left for the model to refuse in its own words
    assert migrate_kwargs("tiny_static", {"node_op_options": 3}, old) == {"node_op_options": 3}
    assert migrate_kwargs("tiny_static", {}, __version__) == {}
    assert migrate_kwargs("mnist1d_static", {}, old) == {}
    assert mine == {"node_op_options": {"eps": 0.3, "activation": "relu"}, "seed": 2}


@pytest.mark.parametrize(
    "bad", [None, 3, b"0.3.0", "", "x.y", "v0.2", "0", "0.3.0-1", "1" * 5000 + ".0", "٠.٣.٠"]
)
def test_a_version_that_is_not_one_is_a_one_line_error(bad):
    with pytest.raises(DNWGraphError, match="expected a dnwgraph version"):
        migrate_kwargs("tiny_static", {}, bad)


def test_versions_compare_as_numbers_and_a_pre_release_before_its_release():
    assert parse_version("0.10.0") > parse_version("0.9.1")
    assert parse_version("1.0") == parse_version("1.0.0") == parse_version("1.0.0+local")
    assert parse_version("0.3.0.dev1") < parse_version("0.3.0") > parse_version("0.3.0rc1")
    assert parse_version("0.3.0") <= parse_version("0.3.0.post2") < parse_version("0.3.1a1")
    # a build of 0.3.0 before its release had 0.2's defaults: it is migrated
    assert migrate_kwargs("tiny_static", {}, "0.3.0.dev1") == {"node_op_options": {"eps": 0.1}}


def test_migrations_are_in_order_and_name_registered_models():
    from dnwgraph.models import list_models

    versions = [parse_version(m.version) for m in migrations.MIGRATIONS]
    assert versions == sorted(versions)
    assert all(v <= parse_version(__version__) for v in versions)
    assert {n for m in migrations.MIGRATIONS for n in m.models} <= set(list_models())


def _as_saved_by(folder, version: str) -> None:
    """Make ``folder``'s config read as written by ``version`` (the one field that differs:
    the format and every other field are those of 0.2's folders)."""
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config["dnwgraph_version"] = version
    config["config_sha256"] = _folder.config_digest(config, "config_sha256")
    path.write_text(json.dumps(config))


def test_a_folder_saved_by_0_2_loads_with_the_epsilon_it_had(tmp_path, tiny, old_oracle):
    folder = save_pretrained(tiny, tmp_path / "m")
    now = from_pretrained(folder)
    assert norm_eps(now) == {1e-5} and same(now, tiny)
    _as_saved_by(folder, "0.2.0")
    old = from_pretrained(folder)
    assert norm_eps(old) == {0.1}
    assert same(old, old_oracle) and not same(old, tiny)
    # saved again, the old default is spelt out and survives any later default
    again = from_pretrained(save_pretrained(old, tmp_path / "again"))
    assert again.model_spec["kwargs"]["node_op_options"] == {"eps": 0.1}
    assert same(again, old_oracle)


@pytest.mark.parametrize("bad", ["soon", "9" * 5000 + ".1", 3])
def test_a_folder_with_a_bad_version_is_refused_in_one_line(tmp_path, tiny, bad):
    folder = save_pretrained(tiny, tmp_path / "m")
    _as_saved_by(folder, bad)
    with pytest.raises(DNWGraphError, match="'dnwgraph_version' must be a version string") as e:
        from_pretrained(folder)
    assert "\n" not in str(e.value)


def test_a_folder_or_checkpoint_of_a_newer_dnwgraph_loads_with_a_warning(tmp_path, tiny):
    """Its defaults may differ from this version's: it loads, and says so."""
    folder = save_pretrained(tiny, tmp_path / "m")
    _as_saved_by(folder, "99.0")
    with pytest.warns(UserWarning, match=r"saved by dnwgraph 99\.0, newer than this one") as w:
        assert same(from_pretrained(folder), tiny)
    assert w[0].filename == __file__  # the caller's line, not the library's
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {**_checkpoint(tiny), "dnwgraph_version": "99.0"})
    with pytest.warns(UserWarning, match=r"checkpoint .* newer than this one") as w:
        assert same(load_model(path), tiny)
    assert w[0].filename == __file__


def _checkpoint(model):
    return new_checkpoint(
        model=model.model_spec, model_state=model.state_dict(), optimizer_state={},
        scheduler_state={}, epoch=1, step=1, config={}, history=[],
    )  # fmt: skip


def test_a_checkpoint_records_its_version_and_one_of_0_2_loads_as_0_2(tmp_path, tiny, old_oracle):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, _checkpoint(tiny))
    assert load_checkpoint(path)["dnwgraph_version"] == __version__
    assert same(load_model(path), tiny)
    state = _checkpoint(tiny)
    del state["dnwgraph_version"]  # what every checkpoint before 0.3.0 holds
    save_checkpoint(path, state)
    assert built_by(load_checkpoint(path)) == "0.2.0"
    old = load_model(path)
    assert norm_eps(old) == {0.1} and same(old, old_oracle)


def test_a_checkpoint_with_a_bad_version_is_refused(tmp_path, tiny):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {**_checkpoint(tiny), "dnwgraph_version": 2})
    with pytest.raises(CheckpointError, match="'dnwgraph_version' must be a version string"):
        load_checkpoint(path)
    assert FORMAT == "dnwgraph-checkpoint/1"  # an optional entry: the format is unchanged


def test_a_new_migration_needs_only_its_line(monkeypatch):
    """The mechanism is not tied to node ops: any keyword, a plain value or a mapping."""
    migration = Migration("9.0.0", ("mnist1d_static",), {"fan_in": "candidates"})
    monkeypatch.setattr(migrations, "MIGRATIONS", (migration,))
    assert migrate_kwargs("mnist1d_static", {}, __version__) == {"fan_in": "candidates"}
    assert migrate_kwargs("mnist1d_static", {"fan_in": "selected"}, "0.2.0") == {
        "fan_in": "selected"
    }
    assert migrate_kwargs("tiny_static", {}, "0.2.0") == {}
