"""Runs started into one folder at once: exactly one writes it, the others are refused in one
line with exit code 2 (the run folder's lock, :mod:`dnwgraph.runs.lock`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tiny_training import resume_config

from dnwgraph.runs.lock import RunLock
from dnwgraph.runs.rundir import RunLockedError
from dnwgraph.train import RunExistsError, load_checkpoint, train
from dnwgraph.train.config import resolve_config

SCRIPT = Path(__file__).with_name("_cli_tiny.py")
EPOCHS = 6


def _start(config: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, str(SCRIPT), "train", "--config", str(config), "--out", str(out)]
    return subprocess.Popen(
        [*argv, "--quiet", *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


@pytest.mark.parametrize("existing", [False, True], ids=["new-folder", "empty-folder"])
def test_two_runs_started_into_one_folder_at_once(tmp_path: Path, existing: bool) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(resume_config(EPOCHS, 96)))
    out = tmp_path / "run"
    if existing:
        out.mkdir()
    procs = [_start(config, out), _start(config, out)]
    results = [(p.wait(timeout=900), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results
    loser = next(r for r in results if r[0] == 2)
    assert loser[2].count("\n") == 1 and loser[2].startswith("dnwgraph: error: "), loser[2]
    assert "Traceback" not in loser[2]
    assert load_checkpoint(out)["epoch"] == EPOCHS  # the winner's run, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "tiny.yaml"]  # no staging
    assert not (out / ".dnwgraph.lock").exists()


def test_no_second_writer_while_a_run_is_written(tmp_path: Path, tiny_config) -> None:
    run = tmp_path / "run"
    tiny_config["train"]["epochs"] = 1
    train(tiny_config, run, progress=False)
    other = RunLock()  # stands for another process training in the folder
    other.acquire(run)
    try:
        for kwargs in ({"resume": True}, {"overwrite": True}):
            with pytest.raises(RunLockedError, match=r"is being written by process \d+ on host"):
                train(tiny_config, run, progress=False, **kwargs)
        (tmp_path / "empty").mkdir()
        other.release()
        other.acquire(tmp_path / "empty")
        with pytest.raises(RunLockedError):
            train(tiny_config, tmp_path / "empty", progress=False)
    finally:
        other.release()
    assert load_checkpoint(run)["epoch"] == 1
    assert resolve_config(load_checkpoint(run)["config"]).train.epochs == 1


def test_a_run_that_finished_meanwhile_is_not_replaced(tmp_path: Path, tiny_config, monkeypatch):
    """The folder was empty when this run checked it, and holds another run when it writes."""
    from dnwgraph.train import loop

    run = tmp_path / "run"
    run.mkdir()
    tiny_config["train"]["epochs"] = 1
    check = loop.check_new_run

    def other_run_finishes_after_the_check(path, overwrite):
        check(path, overwrite)
        monkeypatch.setattr(loop, "check_new_run", check)
        train(tiny_config, path, progress=False)  # the other process

    monkeypatch.setattr(loop, "check_new_run", other_run_finishes_after_the_check)
    tiny_config_2 = {**tiny_config, "train": {**tiny_config["train"], "seed": 5}}
    with pytest.raises(RunExistsError, match="already holds a run"):
        train(tiny_config_2, run, progress=False)
    assert resolve_config(load_checkpoint(run)["config"]).train.seed == 0  # the other's, kept
