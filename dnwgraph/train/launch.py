"""Start ``N`` training processes on this machine (``dnwgraph train --nproc N``).

This is a thin layer over PyTorch's own launcher (:func:`torch.multiprocessing.start_processes`)
that sets the variables ``torchrun`` would set (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``), so that a worker sees exactly what it sees under
``torchrun`` and :meth:`~dnwgraph.train.distributed.DistEnv.from_environment` builds the process
group in both cases.  When a worker fails or is killed, the others are stopped and the caller
gets a :class:`WorkerFailed` that names the worker, instead of a run that hangs in a collective.
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from typing import Any

from dnwgraph.errors import warnings_as_lines

__all__ = ["WorkerFailed", "launch", "free_port"]


class WorkerFailed(RuntimeError):
    """A training process raised an exception or died; the others were stopped."""


def free_port() -> int:
    """A TCP port on the loopback interface that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(
    local_rank: int,
    nproc: int,
    port: int,
    error_dir: str,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    os.environ.update(
        RANK=str(local_rank),
        LOCAL_RANK=str(local_rank),
        WORLD_SIZE=str(nproc),
        LOCAL_WORLD_SIZE=str(nproc),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    # each process gets its share of the cores instead of all of them
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // nproc))
    try:
        with warnings_as_lines(quiet=local_rank != 0):  # the first process speaks for all
            fn(*args, **kwargs)
    except BaseException as err:
        # when one worker fails its peers fail next (a collective loses its peer): record the
        # time so that the launcher reports the first failure, the cause
        with open(os.path.join(error_dir, str(local_rank)), "w") as f:
            f.write(f"{time.time()!r}\n{type(err).__name__}: {err}")
        raise
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def launch(fn: Callable[..., Any], nproc: int, *args: Any, **kwargs: Any) -> None:
    """Run ``fn(*args, **kwargs)`` in ``nproc`` fresh processes of this machine.

    ``fn`` must be importable by name (a module-level function), because the workers are
    started with the ``spawn`` method.  Inside ``fn``,
    :meth:`DistEnv.from_environment() <dnwgraph.train.distributed.DistEnv.from_environment>`
    returns this process's rank and initialises the process group (``gloo`` on CPU, ``nccl``
    on CUDA).

    Args:
        fn (callable): the work of one process.
        nproc (int): number of processes (``>= 1``; ``1`` runs ``fn`` in this process).
        *args, **kwargs: passed to ``fn``.

    Raises:
        DNWGraphError: if ``nproc`` is not an int ``>= 1`` (a ``ValueError``).
        WorkerFailed: when a worker raised or died; the remaining workers are terminated.

    Examples:
        >>> launch(print, 1, "one process")
        one process
    """
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        from dnwgraph.errors import DNWGraphError

        raise DNWGraphError(f"'nproc' must be a positive integer (got {nproc!r})")
    if nproc == 1:
        fn(*args, **kwargs)
        return
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="dnwgraph-launch-") as error_dir:
        context = mp.start_processes(
            _worker,
            args=(nproc, free_port(), error_dir, fn, args, kwargs),
            nprocs=nproc,
            join=False,
            start_method="spawn",
        )
        try:
            while not context.join():
                pass
        except (mp.ProcessRaisedException, mp.ProcessExitedException):
            # join() has stopped the other workers; name the one that failed first
            raise WorkerFailed(_first_failure(context.processes, error_dir, nproc)) from None


def _first_failure(processes: list[Any], error_dir: str, nproc: int) -> str:
    for rank, proc in enumerate(processes):  # killed from outside: the cause
        code = proc.exitcode
        if code is not None and code < 0 and -code != signal.SIGTERM:
            name = signal.Signals(-code).name
            return (
                f"training worker {rank} of {nproc} died (signal {name}); the others were stopped"
            )
    records = []
    for name in os.listdir(error_dir):
        with open(os.path.join(error_dir, name)) as f:
            stamp, message = f.read().split("\n", 1)
        records.append((float(stamp), int(name), message))
    if records:
        _, rank, message = min(records)
        return f"training worker {rank} of {nproc} failed: {message} (the others were stopped)"
    for rank, proc in enumerate(processes):
        if proc.exitcode not in (None, 0):
            how = f"exit code {proc.exitcode}"
            return f"training worker {rank} of {nproc} died ({how}); the others were stopped"
    return f"a training worker of {nproc} failed; the others were stopped"
