"""Process-group helpers for ``torch.distributed.run`` (torchrun): the same code runs alone.

Rank and world size come from the environment torchrun sets (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``); NCCL on GPUs, gloo on CPU. One main process prints, logs and writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size``, on ``device``."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1), else run alone.

    Args:
        device: ``auto`` (CUDA if available), ``cpu`` or ``cuda``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but CUDA is not available")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world_size, device=dev)


def reduce_mean(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average scalar values over all processes (identity when alone); every rank passes the
    same keys."""
    total = reduce_sum(values, info)
    return {k: v / info.world_size for k, v in total.items()} if info.distributed else total


def reduce_sum(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Sum scalar values over all processes (identity when alone); every rank passes the same
    keys."""
    if not info.distributed:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist(), strict=True))


def gather_objects(value: object, info: DistInfo) -> list[object]:
    """Every process's ``value``, in rank order (``[value]`` when alone)."""
    if not info.distributed:
        return [value]
    out: list[object] = [None] * info.world_size
    dist.all_gather_object(out, value)
    return out


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op when alone)."""
    if info.distributed:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    """Leave the process group."""
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()
