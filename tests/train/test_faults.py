"""Fault injection: a run killed at any point, during any write, resumes to the exact result.

Two kinds of faults:

* in process, at every file write of a run (config, initial weights, wiring snapshots,
  checkpoint, metrics): the writer is stopped half-way through the temporary file, after it
  but before the rename, or right after the rename, as SIGKILL would stop it;
* SIGKILL of a training subprocess at random moments, resumed each time.

After every fault the run directory must hold only whole files (every snapshot, checkpoint and
``metrics.csv`` that exists loads), ``--resume`` must accept it, and the resumed run must end
bit for bit where an uninterrupted run ends, with no temporary file left.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_resume import _assert_same_run as _assert_same_run_3
from tiny_training import resume_config

from dnwgraph import _atomic
from dnwgraph.runs.lock import LOCK, holder
from dnwgraph.runs.run import Run, load_snapshots, read_metrics_csv
from dnwgraph.train import load_checkpoint, train

EPOCHS, SAMPLES = 3, 96
PHASES = ("half-written", "written-not-renamed", "renamed")
SCRIPT = Path(__file__).with_name("_run_tiny.py")


class Killed(BaseException):
    """Stands for SIGKILL: nothing in the package catches a BaseException."""


def _writes(monkeypatch, tmp_path: Path) -> list[str]:
    """The files an uninterrupted run writes, in order (names relative to the run)."""
    names: list[str] = []
    commit = _atomic._commit

    def record(tmp: Path, path: Path) -> None:
        names.append(path.name if path.parent.name != "wiring" else f"wiring/{path.name}")
        commit(tmp, path)

    monkeypatch.setattr(_atomic, "_commit", record)
    train(resume_config(EPOCHS, SAMPLES), tmp_path / "count", progress=False)
    monkeypatch.undo()
    return names


def _inject(monkeypatch, index: int, phase: str) -> None:
    """Raise :class:`Killed` during write number ``index`` (0-based), at ``phase``."""
    fill, commit = _atomic._fill, _atomic._commit
    count = {"fill": 0, "commit": 0}

    def faulty_fill(f, data: bytes) -> None:
        n = count["fill"]
        count["fill"] += 1
        if n == index and phase == "half-written":
            fill(f, data[: len(data) // 2])
            raise Killed
        fill(f, data)

    def faulty_commit(tmp: Path, path: Path) -> None:
        n = count["commit"]
        count["commit"] += 1
        if n == index and phase == "written-not-renamed":
            raise Killed
        commit(tmp, path)
        if n == index and phase == "renamed":
            raise Killed

    monkeypatch.setattr(_atomic, "_fill", faulty_fill)
    monkeypatch.setattr(_atomic, "_commit", faulty_commit)


def _assert_whole_files(run: Path) -> None:
    """Every file of the run that is not a temporary file is complete and loads."""
    if (run / "checkpoint.pt").exists():
        load_checkpoint(run)
    if (run / "wiring").is_dir() and any((run / "wiring").glob("epoch_*.pt")):
        load_snapshots(run)
    if (run / "init.pt").exists():
        Run(run).initial_weights()
    if (run / "metrics.csv").exists():
        read_metrics_csv(run / "metrics.csv")
    assert (run / "config.yaml").is_file()  # a run folder never exists without its config


def _assert_same_run(reference: Path, run: Path) -> None:
    _assert_same_run_3(reference, run)  # checkpoint, optimizer, last snapshot, metrics rows
    for epoch in range(EPOCHS + 1):
        a, b = Run(reference).snapshot(epoch), Run(run).snapshot(epoch)
        assert torch.equal(a["conv"]["edge_weight"], b["conv"]["edge_weight"]), epoch
    init_a, init_b = Run(reference).initial_weights(), Run(run).initial_weights()
    assert all(torch.equal(v, init_b[k]) for k, v in init_a.items())
    assert not [p for p in run.rglob(".*")], "temporary files left behind"


def _cases() -> list[tuple[int, str]]:
    """Every write of the run (config, init.pt, snapshot 0, then snapshot, checkpoint and
    metrics of every epoch), stopped at each of the three phases."""
    return [(i, phase) for i in range(3 + 3 * EPOCHS) for phase in PHASES]


def test_every_write_of_a_run_is_counted(tmp_path: Path, monkeypatch) -> None:
    names = _writes(monkeypatch, tmp_path)
    epochs = [
        [f"wiring/epoch_{e:04d}.pt", "checkpoint.pt", "metrics.csv"] for e in range(1, EPOCHS + 1)
    ]
    assert names == ["config.yaml", "init.pt", "wiring/epoch_0000.pt", *sum(epochs, [])]
    assert len(names) == 3 + 3 * EPOCHS == len(_cases()) // len(PHASES)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("faults") / "reference"
    train(resume_config(EPOCHS, SAMPLES), path, progress=False)
    return path


@pytest.mark.parametrize(("index", "phase"), _cases())
def test_a_fault_in_any_write_resumes_exactly(
    tmp_path: Path, monkeypatch, reference: Path, index: int, phase: str
) -> None:
    run = tmp_path / "run"
    _inject(monkeypatch, index, phase)
    with pytest.raises(Killed):
        train(resume_config(EPOCHS, SAMPLES), run, progress=False)
    monkeypatch.undo()
    if run.exists():
        _assert_whole_files(run)
        train(None, run, resume=True, progress=False)
    else:  # killed while the folder was being created: nothing to resume, start it again
        assert index == 0
        train(resume_config(EPOCHS, SAMPLES), run, progress=False)
    _assert_same_run(reference, run)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging folder left


def test_random_sigkills_then_resume_equal_the_uninterrupted_run(
    tmp_path: Path, reference: Path
) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    rng = random.Random(2024)
    kills = 0
    for attempt in range(12):
        resume = ["--resume"] if run.exists() else []
        argv = [sys.executable, str(SCRIPT), str(run), str(EPOCHS), str(SAMPLES), *resume]
        started = time.time_ns()
        proc = subprocess.Popen(argv, env=env)
        try:
            if attempt < 2:  # then let it finish
                _wait_for_training(proc, run, started)
                time.sleep(rng.uniform(0.0, 0.3))  # an epoch of this run takes ~0.1-0.2 s
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
            proc.wait(timeout=900)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL
        if run.exists():
            _assert_whole_files(run)
            assert holder(run) is None  # the killed writer's lock, if left, is stale
    assert proc.returncode == 0
    assert kills >= 1
    _assert_same_run(reference, run)


def _wait_for_training(proc: subprocess.Popen, run: Path, since_ns: int) -> None:
    """Until the process is about to train (it wrote init.pt, or metrics.csv on a resume from
    a checkpoint), or it ended."""
    deadline = time.monotonic() + 900  # generous: a loaded machine imports torch slowly

    def started() -> bool:
        for name in ("init.pt", "metrics.csv"):
            try:
                if (run / name).stat().st_mtime_ns >= since_ns:
                    return True
            except FileNotFoundError:
                pass
        return False

    while not started() and proc.poll() is None:
        assert time.monotonic() < deadline, "the run did not start within 900 s"
        time.sleep(0.002)


@pytest.mark.parametrize("record", ["", '{"pid": 4', '{"pid": 999999, "host": "h", "since": 0}'])
def test_a_kill_while_the_lock_is_written_leaves_a_run_that_starts_again(
    tmp_path: Path, reference: Path, record: str
) -> None:
    """Killed after the lock file was created (empty, half or wholly written), before or
    after the config: the same command starts the run again, and it ends as the reference."""
    staging = tmp_path / ".run.0123abcd.tmp"  # killed while the new folder was assembled
    staging.mkdir()
    (staging / LOCK).write_text(record)
    (staging / ".config.tmp.yaml").write_text("half")
    train(resume_config(EPOCHS, SAMPLES), tmp_path / "run", progress=False)
    _assert_same_run(reference, tmp_path / "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    empty = tmp_path / "empty"  # killed in an existing empty folder
    empty.mkdir()
    (empty / LOCK).write_text(record)
    train(resume_config(EPOCHS, SAMPLES), empty, progress=False)
    _assert_same_run(reference, empty)
    (empty / LOCK).write_text(record)  # killed while resuming: resumed again
    train(None, empty, resume=True, progress=False)
    _assert_same_run(reference, empty)
