"""Process topology for training: one process, or many on ``torch.distributed``.

The training loop never asks "am I distributed?"; it talks to a :class:`DistEnv`, which is the
identity for a single process and wraps PyTorch's own engine (DistributedDataParallel, a
distributed sampler, all-reduce) for several.  Every process runs the same selection on the
same all-reduced weights, and top-k ties break deterministically, so the wiring stays
identical on every rank without any extra communication.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, DistributedSampler, Sampler

from dnwgraph.errors import DNWGraphError

__all__ = ["DistEnv", "sync_batchnorm"]


#: What ``nn.SyncBatchNorm.convert_sync_batchnorm`` converts, by public names.
_BATCH_NORMS: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.LazyBatchNorm1d,
    nn.LazyBatchNorm2d,
    nn.LazyBatchNorm3d,
    nn.SyncBatchNorm,
)


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """On CUDA, swap every BatchNorm child of ``model`` for SyncBatchNorm, in place.

    Returns ``model`` (a bare BatchNorm root cannot be replaced in place and is refused).
    On other devices nothing changes.
    """
    if torch.device(device).type != "cuda":
        return model
    if isinstance(model, _BATCH_NORMS):
        raise DNWGraphError("a bare BatchNorm module cannot be converted in place; wrap it first")
    for name, child in model.named_children():
        converted = nn.SyncBatchNorm.convert_sync_batchnorm(child)
        if converted is not child:
            setattr(model, name, converted)
    return model


@dataclass
class DistEnv:
    """Where this process sits among the training processes.

    Args:
        rank (int): this process's rank in ``[0, world_size)``. (default: ``0``)
        world_size (int): number of processes. (default: ``1``)
        device (torch.device): the device this process computes on. (default: CPU)
        local_rank (int): rank on this machine (selects the CUDA device). (default: ``0``)

    A single-process :class:`DistEnv` changes nothing: :meth:`wrap` returns the model,
    :meth:`all_reduce_sum` returns its input.  Its :meth:`sampler` is still the distributed
    sampler with one replica, so that a run on one process visits the data in exactly the
    order that ``N`` processes visit it together (batch ``b`` of the global run is the union
    of batch ``b`` of every rank), which makes 1- and N-process runs comparable.

    Examples:
        >>> env = DistEnv()
        >>> env.is_main, env.world_size
        (True, 1)
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    local_rank: int = 0

    def __post_init__(self) -> None:
        if self.world_size < 1:
            raise DNWGraphError(f"'world_size' must be >= 1 (got {self.world_size})")
        if not 0 <= self.rank < self.world_size:
            raise DNWGraphError(f"'rank' must be in [0, {self.world_size}) (got {self.rank})")
        self.device = torch.device(self.device)

    @property
    def is_main(self) -> bool:
        """Whether this process writes checkpoints, metrics, snapshots and progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def wrap(self, model: nn.Module, **ddp_options: Any) -> nn.Module:
        """Wrap ``model`` in :class:`~torch.nn.parallel.DistributedDataParallel` when needed.

        Gradients of every candidate edge (the straight-through ones included) are ordinary
        parameter gradients, so DDP all-reduces them like any other.  Batch statistics: on
        CUDA the BatchNorm layers of ``model`` are replaced in place by
        :class:`~torch.nn.SyncBatchNorm` (statistics over the global batch; the state-dict keys
        do not change); on CPU (gloo has no SyncBatchNorm) every process normalises with the
        statistics of its own share of the batch, and the running averages saved by rank 0
        are rank 0's.
        """
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        sync_batchnorm(model, self.device)
        if self.device.type == "cuda":
            ddp_options.setdefault("device_ids", [self.device.index or 0])
        return DistributedDataParallel(model, **ddp_options)

    def sampler(self, dataset: Dataset, shuffle: bool, seed: int) -> Sampler:
        """This process's share of ``dataset``; call ``set_epoch(epoch)`` before each epoch.

        The order is a function of ``(seed, epoch)`` only, so re-running an epoch (after a
        resume) visits the same samples in the same order.
        """
        return DistributedSampler(
            dataset,
            num_replicas=self.world_size,
            rank=self.rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=False,
        )

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over all processes, in place; returns it."""
        if self.distributed:
            import torch.distributed as dist

            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def barrier(self) -> None:
        """Wait for every process (no-op for one process)."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    @classmethod
    def from_environment(
        cls, device: str | torch.device | None = None, timeout_s: float = 300.0
    ) -> DistEnv:
        """The environment ``torchrun`` (or :func:`~dnwgraph.train.launch`) sets up.

        Reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; with a world size above one it
        initialises the default process group (``nccl`` on CUDA, ``gloo`` on CPU) with a
        ``timeout_s`` after which a collective that waits on a dead worker fails instead of
        hanging.  Without those variables it is a single process.
        """
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        dev = torch.device(device) if device is not None else torch.device("cpu")
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", local_rank)
        if world_size > 1:
            import torch.distributed as dist

            if dev.type == "cuda":
                torch.cuda.set_device(dev)
            if not dist.is_initialized():
                dist.init_process_group(
                    backend="nccl" if dev.type == "cuda" else "gloo",
                    rank=rank,
                    world_size=world_size,
                    timeout=timedelta(seconds=timeout_s),
                )
        return cls(rank=rank, world_size=world_size, device=dev, local_rank=local_rank)

    def close(self) -> None:
        """Tear down the process group this environment started."""
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
