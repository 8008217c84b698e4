"""Multi-GPU / multi-node training with ``torchrun`` (DDP): NCCL on GPUs, gloo on CPUs.

``torchrun --nproc-per-node N $(which hac-train) DATA --out RUN`` sets RANK, WORLD_SIZE and
LOCAL_RANK; ``init()`` joins the group. Rank 0 prepares faces and writes every file;
the global batch stays the recipe's (each process takes batch / N).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def from_env() -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def init(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes (no-op for one process)."""
    info = from_env()
    if info.enabled and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(info.local_rank)
        torch.distributed.init_process_group(backend)
    return info


def shutdown() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        torch.distributed.barrier()


def broadcast(obj, info: DistInfo):
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj if info.main else None]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj, info: DistInfo) -> list:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world
    torch.distributed.all_gather_object(out, obj)
    return out


def all_sum(values: list[float], info: DistInfo) -> list[float]:
    if not info.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    if torch.distributed.get_backend() == "nccl":
        t = t.cuda()
    torch.distributed.all_reduce(t)
    return t.cpu().tolist()
