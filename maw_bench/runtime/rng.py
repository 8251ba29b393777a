"""Snapshots of the random state of the CPU and of one accelerator, to replay a computation.

GRPO's group re-runs the MAW layers once per sample with the same dropout masks, and
GradCache re-runs each chunk with the masks of its first pass; both need the state of
every generator the computation draws from, not only the CPU's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RNGSnapshot:
    cpu: torch.Tensor
    device: torch.device
    accelerator: torch.Tensor | None


def snapshot(device: torch.device | str | None = None) -> RNGSnapshot:
    """The CPU generator's state and, for a CUDA ``device``, that device's."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    acc = torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None
    return RNGSnapshot(torch.get_rng_state(), dev, acc)


def restore(state: RNGSnapshot) -> None:
    torch.set_rng_state(state.cpu)
    if state.accelerator is not None:
        torch.cuda.set_rng_state(state.accelerator, state.device)
