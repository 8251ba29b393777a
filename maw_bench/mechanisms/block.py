"""A mechanism in an appended block (``maw.placement: append``), through the same builder as in place.

An appended block of the standard arm attends with ``StandardAttention``; a mechanism wraps
a BERT self-attention. ``BlockSelfAttention`` gives the block's attention that face (its
``config``, ``query``/``key``/``value``, ``dropout``, the HF call returning ``(out, None)``), so
gated and differential attention wrap an appended block exactly as they wrap a pretrained
layer, start at the block the standard arm has, and need no code of their own for ``append``;
``BlockMechanism`` turns the result back into a block's ``(x, mask) -> (B, L, d)``.

Imports only torch: shipped with an export as ``mech_block.py``.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn as nn


class BlockSelfAttention(nn.Module):
    """An appended block's ``StandardAttention`` seen as a BERT self-attention (its weights, not a copy)."""

    def __init__(self, standard: nn.Module) -> None:
        super().__init__()
        self.standard = standard
        self.config = SimpleNamespace(hidden_size=standard.hidden_size, num_attention_heads=standard.num_heads)
        self.dropout = nn.Dropout(standard.p)

    @property
    def query(self) -> nn.Linear:
        return self.standard.query

    @property
    def key(self) -> nn.Linear:
        return self.standard.key

    @property
    def value(self) -> nn.Linear:
        return self.standard.value

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *args, **kwargs):
        return self.standard(hidden_states, attention_mask), None


class BlockMechanism(nn.Module):
    """A mechanism built on a block's attention, called as the block calls its attention."""

    def __init__(self, standard: nn.Module, build) -> None:
        super().__init__()
        self.inner = build(BlockSelfAttention(standard))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.inner(x, mask)[0]
