"""Distributed data parallel under ``torchrun``: set-up, rank helpers and collectives.

``torchrun`` sets RANK, WORLD_SIZE and LOCAL_RANK; :func:`setup` reads them and starts the process
group (NCCL on CUDA, gloo on CPU). Without them everything here degrades to a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..errors import RestoreKitError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def pick_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: this process's GPU if there is one, else the CPU."""
    if preference == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(preference)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RestoreKitError(f"train.device={preference}: CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def setup(preference: str = "auto") -> DistInfo:
    """Start the process group when launched by torchrun (idempotent); return this process's place."""
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return DistInfo(device=pick_device(preference))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    device = pick_device(preference, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=device)


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(info: DistInfo, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_flag(info: DistInfo, *flags: bool) -> list[bool]:
    """For each flag: is it set on any rank (one all-reduce for all of them)."""
    if not info.enabled:
        return list(flags)
    t = torch.tensor([float(f) for f in flags], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def mean_scalar(info: DistInfo, value: float) -> float:
    """Mean of a float over ranks (for logging the global loss)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return float(t.item()) / info.world_size
