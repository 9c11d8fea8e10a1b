"""Kill -9 a run mid-epoch, resume it, and compare with an uninterrupted run bit for bit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_training import resume_config

from dnwgraph.runs.run import Run, read_metrics_csv
from dnwgraph.train import Callback, CheckpointError, load_checkpoint, train

EPOCHS, SAMPLES = 3, 480
SCRIPT = Path(__file__).with_name("_run_tiny.py")


def _assert_same_run(a: Path, b: Path) -> None:
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca["epoch"] == cb["epoch"] == EPOCHS and ca["step"] == cb["step"]
    assert ca["model_state"].keys() == cb["model_state"].keys()
    for key, value in ca["model_state"].items():
        assert torch.equal(value, cb["model_state"][key]), key
    for (_, sa), (_, sb) in zip(
        ca["optimizer_state"]["state"].items(), cb["optimizer_state"]["state"].items(), strict=True
    ):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    snap_a, snap_b = Run(a).snapshot(EPOCHS), Run(b).snapshot(EPOCHS)
    assert torch.equal(snap_a["conv"]["active"], snap_b["conv"]["active"])
    assert torch.equal(snap_a["conv"]["edge_weight"], snap_b["conv"]["edge_weight"])
    rows_a, rows_b = read_metrics_csv(a / "metrics.csv"), read_metrics_csv(b / "metrics.csv")
    assert len(rows_a) == len(rows_b) == EPOCHS
    for ra, rb in zip(rows_a, rows_b, strict=True):
        ra.pop("epoch_time_s"), rb.pop("epoch_time_s")
        assert ra == rb


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    train(resume_config(EPOCHS, SAMPLES), reference, progress=False)

    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    # the run kills itself halfway through epoch 2 (a counted step, not a timer)
    argv = [sys.executable, str(SCRIPT), str(killed), str(EPOCHS), str(SAMPLES)]
    proc = subprocess.run([*argv, "--kill-in-epoch", "2"], env=env, timeout=900)
    assert proc.returncode == -signal.SIGKILL
    assert load_checkpoint(killed)["epoch"] == 1
    assert len(read_metrics_csv(killed / "metrics.csv")) == 1

    train({}, killed, resume=True, progress=False)
    _assert_same_run(reference, killed)


def test_resume_before_first_checkpoint_restarts_from_saved_config(tmp_path: Path) -> None:
    reference, run = tmp_path / "reference", tmp_path / "run"
    train(resume_config(EPOCHS, 96), reference, progress=False)
    train(resume_config(EPOCHS, 96), run, progress=False)
    # a run killed during epoch 1: config.yaml and init.pt exist, no checkpoint yet
    for name in ("checkpoint.pt", "metrics.csv"):
        (run / name).unlink()
    train({}, run, resume=True, progress=False)
    _assert_same_run(reference, run)


def test_resume_reads_the_run_config_through_run(tmp_path: Path) -> None:
    """The saved config.yaml is read by Run.config(): a damaged one is a one-line error when
    it is all the run has, and the checkpoint's own config wins when there is one."""
    from dnwgraph.runs import Run
    from dnwgraph.train import ConfigError

    run = tmp_path / "run"
    train(resume_config(1, 96), run, progress=False)
    saved = Run(run).config()
    assert saved == load_checkpoint(run)["config"]  # what training wrote, read back
    Run(run).config_path.write_text("train: [1,\n")
    train({}, run, resume=True, progress=False)  # finished; config.yaml damaged: no error
    (run / "checkpoint.pt").unlink()
    with pytest.raises(ConfigError, match=r"cannot resume .*run config '.*config.yaml' is not"):
        train({}, run, resume=True, progress=False)


def test_another_runs_checkpoint_is_refused(tmp_path: Path) -> None:
    run, other = tmp_path / "run", tmp_path / "other"
    train(resume_config(1, 96), run, progress=False)
    config = resume_config(1, 96)
    config["model"]["kwargs"]["hidden"] = 5  # another model
    train(config, other, progress=False)
    (run / "checkpoint.pt").write_bytes((other / "checkpoint.pt").read_bytes())
    with pytest.raises(
        CheckpointError, match=r"does not belong to its config.yaml \(model\.kwargs"
    ):
        train({}, run, resume=True, progress=False)


def test_a_checkpoint_of_another_layout_names_the_keys_in_one_line(tmp_path: Path) -> None:
    """Model weights under other module names (as a renamed module's old keys are) do not
    load: the error counts and names the keys instead of quoting torch's first line."""
    from dnwgraph.runs.checkpoint import save_checkpoint

    run = tmp_path / "run"
    train(resume_config(1, 96), run, progress=False)
    ckpt = load_checkpoint(run)
    ckpt["model_state"] = {
        k.replace("conv.", "wiring.", 1): v for k, v in ckpt["model_state"].items()
    }
    del ckpt["checksum"]
    save_checkpoint(run / "checkpoint.pt", ckpt)
    with pytest.raises(CheckpointError) as info:
        train({"train": {"epochs": 2}}, run, resume=True, progress=False)
    message = str(info.value)
    assert "\n" not in message and "its model state does not fit LayeredMLP: " in message
    assert "keys missing ('conv.edge_weight'" in message
    assert "keys unexpected ('wiring." in message


def test_resume_recreates_a_deleted_metrics_csv_and_snapshot(tmp_path: Path) -> None:
    reference, run = tmp_path / "reference", tmp_path / "run"
    train(resume_config(2, 96), reference, progress=False)
    train(resume_config(2, 96), run, progress=False)
    (run / "metrics.csv").unlink()
    (run / "wiring" / "epoch_0002.pt").unlink()
    train({}, run, resume=True, progress=False)  # finished: nothing to train, files restored
    rows, expected = (
        read_metrics_csv(run / "metrics.csv"),
        read_metrics_csv(reference / "metrics.csv"),
    )
    assert [r["epoch"] for r in rows] == [1, 2]
    for a, b in zip(rows, expected, strict=True):
        a.pop("epoch_time_s"), b.pop("epoch_time_s")
        assert a == b
    _assert_same_run_files(reference, run, 2)


def _assert_same_run_files(a: Path, b: Path, epoch: int) -> None:
    snap_a, snap_b = Run(a).snapshot(epoch), Run(b).snapshot(epoch)
    for key in ("edge_index", "edge_weight", "active"):
        assert torch.equal(snap_a["conv"][key], snap_b["conv"][key]), key


def test_resume_removes_stale_temporary_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(resume_config(1, 96), run, progress=False)
    stale = [run / ".checkpoint.tmp.pt", run / "wiring" / ".epoch_0002.tmp.pt"]
    for p in stale:
        p.write_bytes(b"half a file")
    train({}, run, resume=True, progress=False)
    assert not any(p.exists() for p in stale)
    assert not [p for p in run.rglob(".*")]


def test_a_kill_before_the_config_is_written_leaves_no_half_run(
    tmp_path: Path, monkeypatch
) -> None:
    from dnwgraph.runs import Run

    class Killed(BaseException):
        pass

    def killed(run, cfg) -> None:
        run.config_path.with_name(".config.tmp.yaml").write_text("half")
        raise Killed

    run = tmp_path / "run"
    monkeypatch.setattr(Run, "write_config", killed)
    with pytest.raises(Killed):
        train(resume_config(1, 96), run, progress=False)
    monkeypatch.undo()
    assert not run.exists()  # nothing that --resume would refuse
    train(resume_config(1, 96), run, progress=False)  # the same --out works again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert load_checkpoint(run)["epoch"] == 1


class _Stop(Exception):
    pass


class _Watch(Callback):
    """Records the fan-in the run's model was built with; stops the run after ``stop_after``
    epochs (its checkpoint of that epoch written)."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.stop_after, self.fan_in = stop_after, None

    def on_train_begin(self, model, config) -> None:
        self.fan_in = model.conv.fan_in

    def on_epoch_end(self, row, model) -> None:
        if row["epoch"] == self.stop_after:
            raise _Stop


@pytest.fixture
def fan_in_was_candidates(monkeypatch):
    """Pretend the tiny model's default ``fan_in`` was ``"candidates"`` before 0.3.0."""
    from tiny_training import MODEL

    from dnwgraph.models import migrations

    migration = migrations.Migration("0.3.0", (MODEL,), {"fan_in": "candidates"})
    monkeypatch.setattr(migrations, "MIGRATIONS", (migration,))


def _as_written_by(run: Path, version: str | None) -> None:
    """Make ``run``'s checkpoint read as written by ``version`` (``None``: before versions
    were recorded)."""
    from dnwgraph.runs.checkpoint import save_checkpoint

    ckpt = load_checkpoint(run)
    del ckpt["dnwgraph_version"], ckpt["checksum"]
    if version is not None:
        ckpt["dnwgraph_version"] = version
    save_checkpoint(run / "checkpoint.pt", ckpt)


def _stopped_after_one_epoch(run: Path) -> _Watch:
    fresh = _Watch(stop_after=1)
    with pytest.raises(_Stop):
        train(resume_config(2, 96), run, progress=False, callbacks=[fresh])
    assert load_checkpoint(run)["epoch"] == 1
    return fresh


def test_a_run_resumes_with_the_defaults_it_was_built_with(
    tmp_path: Path, fan_in_was_candidates
) -> None:
    """A run started before a default changed (its checkpoint records no version, as every
    one before 0.3.0) is resumed, and later loaded, with the old default; its new
    checkpoints carry its first version on."""
    from dnwgraph import __version__
    from dnwgraph.runs.checkpoint import load_model

    run = tmp_path / "run"
    fresh = _stopped_after_one_epoch(run)
    assert fresh.fan_in == "selected" and load_checkpoint(run)["dnwgraph_version"] == __version__
    _as_written_by(run, None)

    resumed = _Watch()
    train({}, run, resume=True, progress=False, callbacks=[resumed])
    assert resumed.fan_in == "candidates"
    done = load_checkpoint(run)
    assert done["epoch"] == 2 and done["dnwgraph_version"] == "0.2.0"
    assert "fan_in" not in done["config"]["model"]["kwargs"]  # the user's, unchanged
    assert load_model(run).conv.fan_in == "candidates"


def test_a_model_the_user_built_is_recorded_with_this_version(
    tmp_path: Path, fan_in_was_candidates
) -> None:
    """Resuming an old run with ``model=``: that model was built here, with today's
    defaults, and its checkpoints say so (load_model then rebuilds the same model)."""
    from tiny_training import MODEL

    from dnwgraph import __version__, create_model
    from dnwgraph.runs.checkpoint import load_model

    run = tmp_path / "run"
    _stopped_after_one_epoch(run)
    _as_written_by(run, None)
    mine = create_model(MODEL, ratio=0.4)
    train(None, run, resume=True, progress=False, model=mine)
    assert load_checkpoint(run)["dnwgraph_version"] == __version__
    assert load_model(run).conv.fan_in == mine.conv.fan_in == "selected"


def test_a_run_started_from_an_older_run_has_its_defaults(
    tmp_path: Path, fan_in_was_candidates
) -> None:
    """init.from_run (finetune) of a run built before a default changed builds the same
    model as the source, and records the source's version."""
    source, tuned = tmp_path / "source", tmp_path / "tuned"
    train(resume_config(1, 96), source, progress=False)
    _as_written_by(source, None)
    config = resume_config(1, 96)
    config["init"] = {"from_run": str(source), "mode": "finetune"}
    watch = _Watch()
    train(config, tuned, progress=False, callbacks=[watch])
    assert watch.fan_in == "candidates"
    assert load_checkpoint(tuned)["dnwgraph_version"] == "0.2.0"


def test_a_run_written_by_a_newer_dnwgraph_is_not_resumed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _stopped_after_one_epoch(run)
    _as_written_by(run, "99.0.0")
    with pytest.raises(CheckpointError, match=r"dnwgraph 99\.0\.0 wrote it, newer than this one"):
        train({}, run, resume=True, progress=False)
    with pytest.warns(UserWarning, match=r"saved by dnwgraph 99\.0\.0, newer than this one"):
        Run(run).load_model()
