"""Linear warm-up then linear decay, stepped once per optimiser step (not per micro-batch).

The multiplier is ``s / W`` during warm-up and ``(T - s) / (T - W)`` after, so after
the ``T``-th optimiser step the rate is exactly zero (as in ``transformers``'
``get_linear_schedule_with_warmup``).
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    return math.ceil(total_steps * warmup_ratio)


def linear_schedule(optimizer: Optimizer, total_steps: int, warmup_ratio: float) -> LambdaLR:
    warm = warmup_steps(total_steps, warmup_ratio)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return LambdaLR(optimizer, factor)
