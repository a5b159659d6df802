"""Data-parallel training across processes started by torchrun (DDP; NCCL on GPUs, gloo on CPU).

``torchrun --nproc_per_node N -m xlexp.cli.run ...`` starts N copies of the same run. Every rank draws
the same batches (same seed) and trains on its own slice of each one; DDP averages the gradients,
and the loss is scaled so that the average equals the one-process batch mean. Everything else
(evaluation, checkpoint choice, testing) runs identically on every rank on identical weights,
so every rank reaches the same decisions without extra messages; only rank 0 writes records,
predictions, matrices, tracker runs and logs. Without torchrun (``WORLD_SIZE`` unset or 1) every
helper here is a no-op.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def info() -> DistInfo:
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return DistInfo()


def is_main() -> bool:
    return info().is_main


def launched_world_size() -> int:
    """The world size torchrun asked for (its environment), before any process group exists."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def setup(device: torch.device) -> torch.device:
    """Join torchrun's process group (env:// rendezvous) once per process; returns this rank's device.
    The group lives until the process exits (a Hydra multirun under torchrun reuses it)."""
    if launched_world_size() <= 1 or not dist.is_available():
        return device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank if device.index is None else device.index)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        atexit.register(_teardown)
        log.info(
            "torchrun: rank %d of %d, backend %s, device %s",
            dist.get_rank(),
            dist.get_world_size(),
            dist.get_backend(),
            device,
        )
    return device


def _teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's value on every rank (e.g. the run id, which names files)."""
    if not info().enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the body first (building a cached model folder, say); the others run it after,
    and find the work done."""
    d = info()
    if d.enabled and not d.is_main:
        dist.barrier()
    yield
    if d.enabled and d.is_main:
        dist.barrier()


def rank_suffix() -> str:
    """For per-rank scratch paths (checkpoints): every rank saves its own copies."""
    d = info()
    return f"-r{d.rank}" if d.enabled else ""


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The module to train through: DDP across ranks, or the model itself."""
    if not info().enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def shard(indices: np.ndarray) -> np.ndarray:
    """This rank's slice of a batch that every rank drew identically."""
    d = info()
    return indices[d.rank :: d.world_size] if d.enabled else indices


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if info().enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor
