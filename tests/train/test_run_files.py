"""The torch files of a run (``init.pt``, the wiring snapshots, the checkpoint) are checked on
resume: checksummed, of this run (its run id); a damaged one is written again from what the
run knows, or refused in one line, never left broken behind a finished run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from test_resume import _assert_same_run_files
from tiny_training import resume_config

from dnwgraph.runs.checkpoint import state_digest
from dnwgraph.runs.run import Run, load_snapshots
from dnwgraph.train import CheckpointError, load_checkpoint, train

EPOCHS = 2


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """Two finished runs of one config (a reference, and one to damage), and another run."""
    root = tmp_path_factory.mktemp("files")
    for name, seed in (("reference", 3), ("other", 4)):
        cfg = resume_config(EPOCHS, 96)
        cfg["train"]["seed"] = seed
        train(cfg, root / name, progress=False)
    return root / "reference", root / "other"


def _copy(reference: Path, tmp_path: Path) -> Path:
    """A copy of the reference run: the same files, the same run id."""
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    return run


def _tamper(path: Path) -> None:
    """Change a value inside the file but keep its old checksum (damage a zip layer misses)."""
    record = torch.load(path, weights_only=True)
    payload = record["state"] if "state" in record else record["snapshot"]["conv"]
    key = next(
        k for k, v in payload.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
    )
    payload[key] = payload[key] + 1
    torch.save(record, path)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGES = {"tampered": _tamper, "truncated": _truncate, "deleted": Path.unlink}


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("name", ["init.pt", "wiring/epoch_0000.pt", "wiring/epoch_0002.pt"])
def test_a_damaged_file_the_run_can_rebuild_is_rebuilt_exactly(
    tmp_path: Path, runs, name: str, damage: str, caplog
) -> None:
    reference, _ = runs
    run = _copy(reference, tmp_path)
    DAMAGES[damage](run / name)
    train(None, run, resume=True, progress=False)
    for epoch in range(EPOCHS + 1):
        _assert_same_run_files(reference, run, epoch)
    init, expected = Run(run).initial_weights(), Run(reference).initial_weights()
    assert all(torch.equal(v, init[k]) for k, v in expected.items())
    assert load_snapshots(run)  # every snapshot checks out
    if damage != "deleted" or name == "init.pt":
        assert "written again" in caplog.text


@pytest.mark.parametrize("damage", ["tampered", "truncated"])
def test_a_damaged_snapshot_the_run_cannot_rebuild_is_refused(
    tmp_path: Path, runs, damage: str
) -> None:
    run = _copy(runs[0], tmp_path)
    DAMAGES[damage](run / "wiring" / "epoch_0001.pt")
    with pytest.raises(
        CheckpointError, match=r"^cannot resume .*epoch_0001.pt.*cannot be rebuilt: move it away"
    ):
        train(None, run, resume=True, progress=False)
    with pytest.raises(CheckpointError, match=r"epoch_0001.pt"):  # the tools refuse it too
        load_snapshots(run)
    (run / "wiring" / "epoch_0001.pt").rename(tmp_path / "moved.pt")
    train(None, run, resume=True, progress=False)  # moved away: the run resumes without it


def test_a_model_given_to_train_cannot_rebuild_init_and_refuses(tmp_path: Path, runs) -> None:
    from tiny_training import LayeredMLP

    run = _copy(runs[0], tmp_path)
    _tamper(run / "init.pt")
    model = LayeredMLP(ratio=0.4)
    with pytest.raises(CheckpointError, match=r"init.pt' is corrupt.*this run cannot rebuild it"):
        train(None, run, resume=True, progress=False, model=model)


@pytest.mark.parametrize("name", ["init.pt", "wiring/epoch_0001.pt", "wiring/epoch_0002.pt"])
def test_a_file_of_another_run_is_refused(tmp_path: Path, runs, name: str) -> None:
    reference, other = runs
    run = _copy(reference, tmp_path)
    shutil.copy(other / name, run / name)
    with pytest.raises(CheckpointError, match=r"^cannot resume .*belongs to another run"):
        train(None, run, resume=True, progress=False)
    assert (run / name).read_bytes() == (other / name).read_bytes()  # refused, not replaced


def test_the_checkpoint_of_another_run_with_the_same_config_is_refused(tmp_path: Path, runs):
    reference, _ = runs
    run = tmp_path / "run"
    train(
        resume_config(EPOCHS, 96)
        | {"train": {"epochs": EPOCHS, "seed": 3, "label_smoothing": 0.1}},
        run,
        progress=False,
    )
    shutil.copy(reference / "checkpoint.pt", run / "checkpoint.pt")
    with pytest.raises(CheckpointError, match=r"checkpoint.pt belongs to another run \(run id"):
        train(None, run, resume=True, progress=False)


def test_every_file_carries_the_run_id_of_its_config(runs) -> None:
    reference, other = runs
    run_id = Run(reference).run_id()
    assert len(run_id) == 32 and run_id != Run(other).run_id()
    assert load_checkpoint(reference)["run_id"] == run_id
    for path in [reference / "init.pt", *sorted((reference / "wiring").glob("*.pt"))]:
        record = torch.load(path, weights_only=True)
        assert record["run_id"] == run_id and record["checksum"] == state_digest(record)
    assert "run_id" not in Run(reference).config()
