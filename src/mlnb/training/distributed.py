"""Data-parallel training across the processes of one job (``torch.distributed``, DDP).

A training command launched by ``torchrun --nproc-per-node N`` (see
:func:`mlnb.training.launch.launcher`, which the rules use when ``train.processes`` > 1) finds its
place in the job in the environment torchrun sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``): :func:`launched_world`. :func:`process_group` then joins the
job's processes (NCCL on CUDA, each process on ``cuda:LOCAL_RANK``; gloo on the
CPU) and leaves the group on the way out. Without torchrun, or with one
process, there is no process group and nothing below communicates: a
single-process run is exactly what it was before.

The processes split every batch, not the data set: each draws the same global
batch (the same indices and the same random numbers from the same seeded
generators as a single-process run) and takes its own slice of it
(:meth:`World.shard`); gradients are averaged by DDP, batch-norm statistics
over the global batch by SyncBatchNorm on CUDA, the logged metrics over the
processes (:meth:`World.average`). Rank 0 alone evaluates, logs to MLflow and
writes checkpoints and outputs; checkpoints hold the unwrapped modules, so a
single-process run resumes a data-parallel one and the other way round.

A stop (SIGTERM, SIGINT; SIGUSR1 only when torchrun forwards it, which
:func:`mlnb.training.launch.launcher` asks for) reaches each process at its own moment; the
processes agree on it at every step boundary (:meth:`World.agreed_stop`), so
all of them stop after the same step, and wait for rank 0's checkpoint
(:meth:`World.barrier`) before they exit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import signal
from collections.abc import Iterator, Mapping

import torch
from torch import nn

from mlnb import tracking
from mlnb.errors import ConfigError

log = logging.getLogger(__name__)

#: How long a collective may wait: rank 0's evaluations (an FID) run while the other ranks wait.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)


@dataclasses.dataclass(frozen=True)
class World:
    """This process's place among the job's ``size`` data-parallel processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    #: the process group for the stop flag and barriers: gloo, so they never wait on the GPU's queue
    control: object = dataclasses.field(default=None, compare=False)

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that evaluates, logs and writes."""
        return self.rank == 0

    def threads(self, job_threads: int) -> int:
        """Each process's share of the job's CPU threads (at least one)."""
        return max(1, job_threads // self.size)

    def check_divisible(self, batch_size: int, key: str) -> None:
        """Every process takes an equal slice of the global batch."""
        if batch_size % self.size:
            raise ConfigError(f"{key}: batch size {batch_size} does not split into the job's {self.size} "
                              "data-parallel processes (train.processes): make it a multiple")

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This process's slice of a global batch (along dim 0): ranks take consecutive, equal slices."""
        if len(batch) % self.size:
            raise ValueError(f"a batch of {len(batch)} does not split into {self.size} equal shards")
        size = len(batch) // self.size
        return batch[self.rank * size:(self.rank + 1) * size]

    def average(self, values: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
        """Each 0-d tensor averaged over the processes (one all-reduce), on ``device``."""
        if not self.distributed or not values:
            return dict(values)
        names = sorted(values)
        stacked = torch.stack([values[name].detach().float().to(device) for name in names])
        torch.distributed.all_reduce(stacked)
        stacked /= self.size
        return {name: stacked[index] for index, name in enumerate(names)}

    def agreed_stop(self, local_signal: str | None) -> str | None:
        """The stop signal any process received (the highest-numbered one), or None: the same on every rank."""
        if not self.distributed:
            return local_signal
        number = torch.tensor([signal.Signals[local_signal].value if local_signal else 0])
        torch.distributed.all_reduce(number, op=torch.distributed.ReduceOp.MAX, group=self.control)
        return signal.Signals(int(number)).name if int(number) else None

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier(group=self.control)

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` in DistributedDataParallel (its batch norms synchronised on CUDA); itself in one process.

        The wrapped module shares ``model``'s parameters, so ``model`` stays the one to
        checkpoint, evaluate and save.
        """
        if not self.distributed:
            return model
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # same parameters, same state-dict keys
        elif any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules()):
            log.warning("batch norm on the CPU normalises each process's shard (SyncBatchNorm needs CUDA)")
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                   else None)


def main_run(world: World, *args, tags: Mapping[str, object] | None = None, **kwargs):
    """:func:`mlnb.tracking.tracked_run` on rank 0 (tagged with the job's process count); elsewhere a tracker
    that logs nothing."""
    if not world.is_main:
        return contextlib.nullcontext(tracking.Tracker())
    return tracking.tracked_run(*args, tags={**(tags or {}), "mlnb.processes": world.size}, **kwargs)


def launched_world(env: Mapping[str, str] = os.environ) -> World:
    """This process's rank and the job's size from torchrun's variables; one process when they are absent."""
    try:
        rank, size, local_rank = (int(env.get(name, default))
                                  for name, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)))
    except ValueError:
        raise ConfigError("RANK, WORLD_SIZE and LOCAL_RANK (set by torchrun) must be integers, got "
                          f"{[env.get(name) for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK')]}") from None
    if size < 1 or not 0 <= rank < size or local_rank < 0:
        raise ConfigError(f"torchrun's RANK {rank} / WORLD_SIZE {size} / LOCAL_RANK {local_rank} are inconsistent")
    return World(rank=rank, size=size, local_rank=local_rank)


def rank_device(world: World, device: torch.device) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` for a CUDA job, the CPU for a CPU job."""
    if not world.distributed or device.type != "cuda":
        return device
    if device.index is not None:
        raise ConfigError(f"train.device: {device} names one GPU; a data-parallel job (train.processes "
                          f"{world.size}) uses cuda:0..{world.size - 1} (choose auto or cuda)")
    if world.local_rank >= torch.cuda.device_count():
        raise ConfigError(f"process {world.rank} of {world.size} wants cuda:{world.local_rank}, but only "
                          f"{torch.cuda.device_count()} GPU(s) are visible (ask for one GPU per process)")
    return torch.device("cuda", world.local_rank)


@contextlib.contextmanager
def process_group(world: World, device: torch.device) -> Iterator[World]:
    """Join the job's processes for the block (nothing for one process); the world with its control group."""
    if not world.distributed:
        yield world
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend, rank=world.rank, world_size=world.size,
                                         timeout=COLLECTIVE_TIMEOUT)
    try:
        control = torch.distributed.new_group(backend="gloo") if backend == "nccl" else None
        log.info("process %d of %d on %s (%s)", world.rank, world.size, device, backend)
        yield dataclasses.replace(world, control=control)
    finally:
        torch.distributed.destroy_process_group()
