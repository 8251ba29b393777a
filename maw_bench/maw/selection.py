"""Selection (DESIGN section 2, step 5): from router logits to depth weights or a hard choice.

=========  ==============================  ==================================
selection  training                        inference
=========  ==============================  ==================================
grpo       sample ``t ~ pi`` (hard)        ``argmax pi`` (hard)
gumbel     straight-through Gumbel-softmax ``argmax`` (hard)
soft       ``softmax(logits)`` mixture      the same mixture
uniform    ``1/D`` mixture, no router       the same
fixed:t    depth ``t``, no router           the same (hard)
=========  ==============================  ==================================

A *hard* selection returns a ``choice`` so the layer can compute only that slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

KINDS = ("grpo", "gumbel", "soft", "uniform", "fixed")


@dataclass(frozen=True)
class Selection:
    kind: str
    depth: int
    fixed: int = 0

    @property
    def needs_router(self) -> bool:
        return self.kind in ("grpo", "gumbel", "soft")

    def choose(
        self,
        logits: torch.Tensor | None,
        batch: int,
        num_heads: int,
        training: bool,
        tau: float,
        device: torch.device,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Return ``(weights, choice)``; exactly one is not None."""
        if self.kind == "fixed":
            return None, torch.full((batch,), self.fixed, dtype=torch.long, device=device)
        if self.kind == "uniform":
            return torch.full((batch, self.depth), 1.0 / self.depth, device=device), None
        assert logits is not None
        if self.kind == "soft":
            return torch.softmax(logits, -1), None
        if not training:
            return None, logits.argmax(-1)
        if self.kind == "grpo":
            return None, sample_depths(logits)
        return F.gumbel_softmax(logits, tau=tau, hard=True, dim=-1), None  # gumbel


def sample_depths(logits: torch.Tensor) -> torch.Tensor:
    """One draw from ``pi = softmax(logits)`` per row (sequence, or sequence and head)."""
    flat = logits.detach().reshape(-1, logits.shape[-1])
    return torch.multinomial(torch.softmax(flat.float(), -1), 1).view(logits.shape[:-1])


def parse_selection(text: str, depth: int) -> Selection:
    """``'fixed:2' -> Selection('fixed', depth, 2)``; validates the index against the depth."""
    if text.startswith("fixed:"):
        try:
            t = int(text.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"selection {text!r}: the depth index after 'fixed:' must be an integer") from None
        if not 0 <= t < depth:
            raise ValueError(f"selection {text!r} needs 0 <= t < depth={depth}")
        return Selection("fixed", depth, t)
    if text not in KINDS:
        raise ValueError(f"selection must be one of grpo, gumbel, soft, uniform, fixed:<t>; got {text!r}")
    return Selection(text, depth)
