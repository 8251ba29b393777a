"""Gated attention: a per-head (or per-channel), input-dependent sigmoid gate on the attention output.

Qiu et al., "Gated Attention for Large Language Models" (arXiv 2505.06708, 2025): the gate
sits after the attention and before the output projection (their position G1), computed
from the layer input, ``Y' = Y * g(X)``. Here ``g(X) = 2 sigmoid(X W + b)`` with ``W = 0,
b = 0`` at initialisation, so the gate is exactly 1 and the arm starts as the pretrained
encoder (tested on MiniLM to 1e-5); fine-tuning learns where to close or open heads.

Imports only torch: a drop-in for a BERT-family self-attention, wrapping the original.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def zero_linear(width_in: int, width_out: int) -> nn.Linear:
    """A linear map that starts at exactly zero, made without drawing from the random stream (zeros anyway: the
    stream stays the blocks' after it, so every arm draws the same weights and dropout masks)."""
    with torch.random.fork_rng(devices=[]):
        lin = nn.Linear(width_in, width_out)
    nn.init.zeros_(lin.weight)
    nn.init.zeros_(lin.bias)
    return lin


class GatedSelfAttention(nn.Module):
    """``BertSelfAttention`` (same call, same return) whose output is gated per head or per channel."""

    def __init__(self, original: nn.Module, granularity: str = "head") -> None:
        super().__init__()
        cfg = original.config
        self.inner = original
        self.num_heads = cfg.num_attention_heads
        self.granularity = granularity
        self.gate = zero_linear(cfg.hidden_size, self.num_heads if granularity == "head" else cfg.hidden_size)

    def added_parameters(self) -> list[nn.Parameter]:
        return list(self.gate.parameters())

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *args, **kwargs):
        out, weights = self.inner(hidden_states, attention_mask, *args, **kwargs)[:2]
        g = 2.0 * torch.sigmoid(self.gate(hidden_states)).to(out.dtype)  # (B, L, H) or (B, L, d); 1 at init
        if self.granularity == "head":
            b, l, d = out.shape
            out = (out.view(b, l, self.num_heads, d // self.num_heads) * g.unsqueeze(-1)).view(b, l, d)
        else:
            out = out * g
        return out, weights
