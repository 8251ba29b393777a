"""Differential attention: the difference of two softmax maps, ``(softmax(Q1 K1^T) - lambda softmax(Q2 K2^T)) V``.

Ye et al., "Differential Transformer" (ICLR 2025, arXiv 2410.05258), adapted to a
pretrained encoder as DEX does (arXiv 2505.16333): the first map is the pretrained head's
own, the second map's query/key projections start as copies of the pretrained ones, and
the per-head ``lambda`` starts at 0 (``diff.lambda_init``), so the arm starts exactly as the
pretrained encoder (tested on MiniLM to 1e-5) and fine-tuning decides how much noise each
head subtracts.

Attention dropout acts on the first map only, through the same fused kernel the standard
arm runs, so this arm draws exactly the standard arm's dropout masks; the subtracted map
is deterministic. Imports only torch (and the fused kernel of ``maw/scores.py``).
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from maw_bench.maw.hf_layers import hf_bool_mask
from maw_bench.maw.scores import hard_attention_fused


class DiffSelfAttention(nn.Module):
    """Drop-in for ``BertSelfAttention``: the pretrained map minus ``lambda_h`` times a second, learned map."""

    def __init__(self, original: nn.Module, lambda_init: float = 0.0) -> None:
        super().__init__()
        cfg = original.config
        self.num_heads = cfg.num_attention_heads
        self.head_dim = cfg.hidden_size // self.num_heads
        self.query, self.key, self.value = original.query, original.key, original.value
        self.query2, self.key2 = copy.deepcopy(original.query), copy.deepcopy(original.key)
        self.lam = nn.Parameter(torch.full((self.num_heads,), float(lambda_init)))
        self.p = original.dropout.p

    def added_parameters(self) -> list[nn.Parameter]:
        return [*self.query2.parameters(), *self.key2.parameters(), self.lam]

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, l, _ = t.shape
        return t.view(b, l, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *args, **kwargs):
        b, l, d = hidden_states.shape
        mask = hf_bool_mask(attention_mask)
        scale = self.head_dim**-0.5
        v = self._heads(self.value(hidden_states))
        q1, k1 = self._heads(self.query(hidden_states)), self._heads(self.key(hidden_states))
        out = hard_attention_fused(q1 * scale, k1, v, mask, self.p if self.training else 0.0)
        if self.lam.requires_grad or bool(self.lam.detach().ne(0).any()):  # a frozen lambda of 0 subtracts nothing
            q2, k2 = self._heads(self.query2(hidden_states)), self._heads(self.key2(hidden_states))
            second = hard_attention_fused(q2 * scale, k2, v, mask, 0.0)
            out = out - self.lam.to(out.dtype).view(1, -1, 1, 1) * second
        return out.transpose(1, 2).reshape(b, l, d), None
