"""The depth router (DESIGN section 2, step 4): a policy ``pi(t | s)`` and a value ``V(s)``.

The state ``s`` is the masked mean of the layer input over real tokens, per
sequence, so it depends on the input (the prototype this replaces fed the router a
constant). A frozen copy of the policy weights, kept as buffers (saved with the
model, not counted as parameters), is the GRPO reference policy.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class DepthRouter(nn.Module):
    """Policy and value heads at ``sequence`` or ``head`` granularity.

    Args:
        hidden_size: width of the layer input the state is pooled from.
        num_heads: attention heads (used when ``granularity == "head"``).
        depth: number of depths to choose among.
        granularity: ``"sequence"`` (one choice per sequence) or ``"head"``
            (one choice per sequence and head).
    """

    def __init__(self, hidden_size: int, num_heads: int, depth: int, granularity: str = "sequence") -> None:
        super().__init__()
        if granularity not in ("sequence", "head"):
            raise ValueError(f"router granularity must be sequence or head, got {granularity!r}")
        self.granularity = granularity
        self.num_heads = num_heads
        self.depth = depth
        groups = num_heads if granularity == "head" else 1
        self.policy = nn.Linear(hidden_size, groups * depth)
        self.value = nn.Linear(hidden_size, groups)
        nn.init.normal_(self.policy.weight, std=0.02)
        nn.init.zeros_(self.policy.bias)
        nn.init.normal_(self.value.weight, std=0.02)
        nn.init.zeros_(self.value.bias)
        self.register_buffer("ref_weight", self.policy.weight.detach().clone())
        self.register_buffer("ref_bias", self.policy.bias.detach().clone())

    @staticmethod
    def state(x: torch.Tensor, token_mask: torch.Tensor | None) -> torch.Tensor:
        """Masked mean over real tokens of ``x (B, L, d)``, layer-normalised: ``(B, d)``."""
        x = x.float()
        if token_mask is None:
            pooled = x.mean(1)
        else:
            m = token_mask.to(x.dtype).unsqueeze(-1)
            pooled = (x * m).sum(1) / m.sum(1).clamp_min(1.0)
        return F.layer_norm(pooled, pooled.shape[-1:])

    def _shape(self, out: torch.Tensor) -> torch.Tensor:
        if self.granularity == "head":
            return out.view(out.shape[0], self.num_heads, self.depth)
        return out

    def forward(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy logits ``(B, D)`` or ``(B, H, D)`` and values ``(B,)`` or ``(B, H)``."""
        state = state.to(self.policy.weight.dtype)
        logits = self._shape(self.policy(state))
        values = self.value(state)
        return logits, values.squeeze(-1) if self.granularity == "sequence" else values

    def reference_logits(self, state: torch.Tensor) -> torch.Tensor:
        state = state.to(self.ref_weight.dtype)
        return self._shape(F.linear(state, self.ref_weight, self.ref_bias))

    @torch.no_grad()
    def sync_reference(self) -> None:
        """Make the current policy the new GRPO reference."""
        self.ref_weight.copy_(self.policy.weight)
        self.ref_bias.copy_(self.policy.bias)
