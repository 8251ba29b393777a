"""MAW as drop-in HuggingFace modules: in place of a BERT-family self-attention, or as a block on top.

Takes ``MAWAttention`` keyword arguments (``options``), not maw-bench's config, and
imports nothing outside ``maw/``: an exported MAW model ships this file with its
weights, so ``AutoModel.from_pretrained(path, trust_remote_code=True)`` rebuilds the
same modules without maw-bench installed.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from maw_bench.maw.attention import MAWAttention, StandardAttention


def hf_bool_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """HF's 4D attention mask (bool for sdpa, additive float for eager) -> bool, True = attend."""
    if mask is None or mask.dtype == torch.bool:
        return mask
    return mask > torch.finfo(mask.dtype).min / 2


class HFMAWSelfAttention(nn.Module):
    """Drop-in for ``BertSelfAttention`` / ``RobertaSelfAttention`` (same call, same return)."""

    def __init__(self, original: nn.Module, options: dict) -> None:
        super().__init__()
        cfg = original.config
        self.maw = MAWAttention(
            hidden_size=cfg.hidden_size,
            num_heads=cfg.num_attention_heads,
            dropout=original.dropout.p,
            query=original.query,
            key=original.key,
            value=original.value,
            **options,
        )

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *args, **kwargs):
        return self.maw(hidden_states, hf_bool_mask(attention_mask)), None


class AppendedBlock(nn.Module):
    """An attention block added on top of the encoder (``placement: append``).

    Pre-LayerNorm with a zero-initialised output projection, so at initialisation
    the block is the identity and both arms start from the pretrained encoder.
    ``options`` None gives the standard arm's block.
    """

    def __init__(self, hidden_size: int, num_heads: int, options: dict | None, dropout: float, eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size, eps=eps)
        if options is None:
            self.attn: nn.Module = StandardAttention(hidden_size, num_heads, dropout)
        else:
            self.attn = MAWAttention(hidden_size, num_heads, dropout=dropout, **options)
        self.out = nn.Linear(hidden_size, hidden_size)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return x + self.drop(self.out(self.attn(self.norm(x), mask)))
