"""Checkpoints: weights_only round trips, RNG state, clear errors for damaged files."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from dnwgraph.runs.checkpoint import (
    FORMAT,
    CheckpointError,
    load_checkpoint,
    load_model,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def _state(**extra) -> dict:
    return {
        "format": FORMAT,
        "model": {"name": "x", "kwargs": {}},
        "model_state": {},
        "epoch": 1,
        "config": {},
        **extra,
    }


def test_atomic_save_leaves_no_temporary_file(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "checkpoint.pt", _state(epoch=1))
    save_checkpoint(tmp_path / "checkpoint.pt", _state(epoch=2))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
    assert load_checkpoint(tmp_path)["epoch"] == 2


def test_rng_state_round_trip_through_weights_only_load(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # a cached gaussian is part of Python's state
    save_checkpoint(tmp_path / "c.pt", {"rng": rng_state()})
    expected = (random.random(), random.gauss(0, 1), np.random.rand(3), torch.rand(3))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    set_rng_state(torch.load(tmp_path / "c.pt", weights_only=True)["rng"])
    got = (random.random(), random.gauss(0, 1), np.random.rand(3), torch.rand(3))
    assert got[:2] == expected[:2]
    assert np.array_equal(got[2], expected[2]) and torch.equal(got[3], expected[3])


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_damaged_checkpoint_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, _state(model_state={"w": torch.randn(1000)}))
    data = path.read_bytes()
    path.write_bytes(
        {"garbage": b"\x00junk" * 50, "truncated": data[: len(data) // 2], "empty": b""}[damage]
    )
    with pytest.raises(CheckpointError, match="is corrupt or truncated and cannot be loaded"):
        load_checkpoint(tmp_path)


def test_wrong_format_missing_keys_and_missing_file(tmp_path: Path) -> None:
    torch.save({"state_dict": {}}, tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match="not a dnwgraph checkpoint"):
        load_checkpoint(tmp_path / "a.pt")
    torch.save({"format": FORMAT, "epoch": 1}, tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match=r"lacks the key\(s\) \['model', 'model_state'"):
        load_checkpoint(tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_model(tmp_path / "nothing")


def _tensor_data_offset(path: Path, min_size: int) -> tuple[int, int]:
    """Offset and size of the first tensor record of a torch zip file at least ``min_size``."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if "/data/" in info.filename and info.file_size >= min_size:
                with open(path, "rb") as f:
                    f.seek(info.header_offset + 26)
                    name_len = int.from_bytes(f.read(2), "little")
                    extra_len = int.from_bytes(f.read(2), "little")
                return info.header_offset + 30 + name_len + extra_len, info.file_size
    raise AssertionError("no tensor record")


def test_corrupted_tensor_bytes_fail_the_checksum(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    edge_index = torch.arange(1000).view(2, 500)
    save_checkpoint(path, _state(model_state={"conv.edge_index": edge_index}))
    start, size = _tensor_data_offset(path, 4000)
    data = bytearray(path.read_bytes())
    rng = random.Random(0)
    for i in rng.sample(range(start, start + size), 100):  # 100 bytes inside the tensor data
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    # torch itself loads this file without complaint: the ids are just wrong
    loaded = torch.load(path, weights_only=True)["model_state"]["conv.edge_index"]
    assert not torch.equal(loaded, edge_index)
    with pytest.raises(CheckpointError, match="do not match its checksum"):
        load_checkpoint(path)


def test_checksum_covers_every_entry(tmp_path: Path) -> None:
    from dnwgraph.runs.checkpoint import state_digest

    state = _state(model_state={"w": torch.ones(3)}, history=[{"test_acc": 0.5}])
    save_checkpoint(tmp_path / "c.pt", state)
    saved = torch.load(tmp_path / "c.pt", weights_only=True)
    assert saved["checksum"] == state_digest(state) and saved["checksum"].startswith("sha256:")
    assert load_checkpoint(tmp_path / "c.pt")["epoch"] == 1
    for change in ({"epoch": 2}, {"history": [{"test_acc": 0.6}]}, {"config": {"a": 1}}):
        assert state_digest({**state, **change}) != state_digest(state), change


def test_a_file_a_safe_load_refuses_is_named_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": FORMAT, "model": random.Random(0)}, path)  # a pickled object
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message and "corrupt or truncated" not in message
    assert "holds Python objects that a safe (weights-only) load refuses" in message
    assert "random.Random" in message and "add_safe_globals" not in message


def test_a_checkpoint_of_another_layout_is_one_line_naming_the_keys(tmp_path: Path) -> None:
    """A state dict with StaticNeuralGraph's keys of up to 0.2 (``graph.*``, now
    ``executor.*``) is refused like any other layout: the keys are named, not renamed."""
    from dnwgraph import create_model

    torch.manual_seed(0)
    model = create_model("mnist1d_static", selection="random", seed=1).eval()
    old = {k.replace("executor.", "graph.", 1): v for k, v in model.state_dict().items()}
    spec = {"name": "mnist1d_static", "kwargs": {"selection": "random", "seed": 1}}
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, _state(model=spec, model_state=old))
    with pytest.raises(CheckpointError) as info:
        load_model(tmp_path)
    message = str(info.value)
    assert message.startswith(f"checkpoint {str(tmp_path)!r} does not fit StaticNeuralGraph: ")
    assert "missing ('executor.conv.edge_weight'" in message and "\n" not in message
    assert "unexpected ('graph.conv.edge_weight'" in message


@pytest.mark.parametrize("bad", [[1], "tpu", "cuda:99", None])
def test_load_model_names_a_bad_map_location_in_one_line(tmp_path, bad):
    from dnwgraph.errors import DNWGraphError
    from dnwgraph.runs import load_model

    with pytest.raises(DNWGraphError, match="map_location"):
        load_model(tmp_path, map_location=bad)
