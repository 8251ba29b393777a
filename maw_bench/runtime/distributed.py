"""Everything distributed, in one module: the process group of ``torchrun`` / ``accelerate launch`` (NCCL on
GPUs, gloo on CPUs), ranks, barriers, the gradient-keeping gather of the loss, and statistics averaged over ranks.

Imports torch only inside the functions that need it, so ``maw-bench --help`` and the progress bars ask for the
rank without starting torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        barrier(self.world_size)


def launched_distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def launch_rank() -> int:
    """The rank a launcher gave this process (``RANK``), known before any process group exists."""
    return int(os.environ.get("RANK", "0"))


def process_rank() -> int:
    """This process's rank in an initialised process group, else 0."""
    try:
        import torch.distributed as dist

        return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    except (ImportError, RuntimeError):
        return 0


def barrier(world_size: int) -> None:
    if world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def from_main_rank(make, world_size: int):
    """``make()`` run on rank 0 only, its (picklable) result given to every rank: one decision the ranks share,
    such as a precision measured on the machine, which each rank measuring for itself could answer differently."""
    if world_size == 1:
        return make()
    import torch.distributed as dist

    box = [make() if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_across_ranks(stats: dict[str, float], world_size: int) -> dict[str, float]:
    """Statistics averaged over ranks (every rank calls this and gets the same dict), so the log is global."""
    if world_size == 1 or not stats:
        return stats
    import torch
    import torch.distributed as dist

    keys = sorted(stats)
    t = torch.tensor([stats[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / world_size for k, v in zip(keys, t.tolist())}


@dataclass
class DistContext:
    """Rank and world size, and an all-gather that keeps the gradient of this rank's slice (the loss's)."""

    rank: int
    world_size: int

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        import torch
        import torch.distributed as dist

        parts = [torch.empty_like(t) for _ in range(self.world_size)]
        dist.all_gather(parts, t.detach().contiguous())
        parts[self.rank] = t
        return torch.cat(parts)

    def local(self, t: torch.Tensor, b: int) -> torch.Tensor:
        return t[self.rank * b : (self.rank + 1) * b]


def setup(device: str | torch.device | None = None) -> DistInfo:
    """Join the process group a launcher prepared (``WORLD_SIZE`` > 1), or describe one process."""
    import torch

    cuda = torch.cuda.is_available()
    if not launched_distributed():
        return DistInfo(0, 1, torch.device(device or ("cuda" if cuda else "cpu")))
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), torch.device(f"cuda:{local}" if cuda else "cpu"))
