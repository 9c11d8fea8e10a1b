"""The local launcher: N processes with a process group, and clean failure when one dies."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from dnwgraph.train.distributed import DistEnv
from dnwgraph.train.launch import WorkerFailed, launch


def _sum_ranks(out_dir: str) -> None:
    env = DistEnv.from_environment(timeout_s=30)
    total = env.all_reduce_sum(torch.tensor([env.rank + 1.0]))
    with open(os.path.join(out_dir, f"rank{env.rank}.txt"), "w") as f:
        f.write(f"{env.world_size} {total.item()} {env.is_main}")


def _one_dies(how: str) -> None:
    env = DistEnv.from_environment(timeout_s=30)
    if env.rank == 1:
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise ValueError("boom in rank 1")
    env.barrier()  # rank 0 would wait here for ever without the launcher's clean-up
    env.barrier()


def test_two_processes_share_a_process_group(tmp_path):
    launch(_sum_ranks, 2, str(tmp_path))
    assert (tmp_path / "rank0.txt").read_text() == "2 3.0 True"
    assert (tmp_path / "rank1.txt").read_text() == "2 3.0 False"


@pytest.mark.parametrize("how, match", [("kill", "died \\(signal SIGKILL\\)"), ("raise", "boom")])
def test_a_dying_worker_stops_the_run_with_a_clear_message(how, match):
    start = time.monotonic()
    with pytest.raises(WorkerFailed, match=f"worker 1 of 2 .*{match}"):
        launch(_one_dies, 2, how)
    assert time.monotonic() - start < 60


def test_single_process_runs_inline(tmp_path):
    launch(_sum_ranks, 1, str(tmp_path))  # no process group, world of one
    assert (tmp_path / "rank0.txt").read_text() == "1 1.0 True"


def test_bad_nproc():
    with pytest.raises(ValueError, match="'nproc' must be a positive integer \\(got 0\\)"):
        launch(print, 0)


def _warns() -> None:
    import warnings

    warnings.warn("the same in every process", UserWarning, stacklevel=1)


def test_a_warning_of_every_process_prints_once_on_one_line(capfd):
    launch(_warns, 2)
    err = [line for line in capfd.readouterr().err.splitlines() if "every process" in line]
    assert err == ["dnwgraph: warning: the same in every process"]
