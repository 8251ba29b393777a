"""The depth router (docs/design.md section 2, step 4): a policy ``pi(t | s)`` over depths.

The state ``s`` is the masked mean of the layer input over real tokens, per
sequence, so it depends on the input (the prototype this replaces fed the router a
constant). By default the state is detached (``maw.router.detach_input``): the
router's own objective (GRPO's policy, KL and entropy terms) then trains the router
only, and the encoder below it learns from the retrieval loss alone, as the standard
arm's does.

The policy starts at zero weights, i.e. the same distribution over depths for every
input: uniform, or leaning towards the last depth (``init_last_prob``).
A copy of the policy weights, kept as buffers (saved with the model, not counted as
parameters), is the GRPO reference: the initial (uniform) policy unless
``maw.grpo.ref_update_every`` refreshes it. GRPO needs no critic, so there is no
value head.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class DepthRouter(nn.Module):
    """Policy head at ``sequence`` or ``head`` granularity.

    Args:
        hidden_size: width of the layer input the state is pooled from.
        num_heads: attention heads (used when ``granularity == "head"``).
        depth: number of depths to choose among.
        granularity: ``"sequence"`` (one choice per sequence) or ``"head"``
            (one choice per sequence and head).
        detach_input: pool the state from a detached layer input, so no router
            loss reaches the encoder through the state.
        init_last_prob: initial probability of the last depth (0: uniform). The
            nested variant's last depth is the pretrained head: starting there makes
            the MAW arm start as the pretrained encoder (``argmax`` picks it).
    """

    def __init__(
        self, hidden_size: int, num_heads: int, depth: int, granularity: str = "sequence", detach_input: bool = True,
        init_last_prob: float = 0.0,
    ) -> None:
        super().__init__()
        if granularity not in ("sequence", "head"):
            raise ValueError(f"router granularity must be sequence or head, got {granularity!r}")
        self.granularity = granularity
        self.num_heads = num_heads
        self.depth = depth
        self.detach_input = detach_input
        groups = num_heads if granularity == "head" else 1
        with torch.random.fork_rng(devices=[]):  # building a router must not move the arms' shared RNG stream
            self.policy = nn.Linear(hidden_size, groups * depth)
        nn.init.zeros_(self.policy.weight)
        nn.init.zeros_(self.policy.bias)
        if init_last_prob > 0 and depth > 1:
            with torch.no_grad():  # logit b on the last depth: e^b / (e^b + D - 1) = p
                self.policy.bias.view(groups, depth)[:, -1] = math.log(init_last_prob * (depth - 1) / (1 - init_last_prob))
        self.register_buffer("ref_weight", self.policy.weight.detach().clone())
        self.register_buffer("ref_bias", self.policy.bias.detach().clone())

    def state(self, x: torch.Tensor, token_mask: torch.Tensor | None) -> torch.Tensor:
        """Masked mean over real tokens of ``x (B, L, d)``, layer-normalised: ``(B, d)``."""
        x = (x.detach() if self.detach_input else x).float()
        if token_mask is None:
            pooled = x.mean(1)
        else:
            m = token_mask.to(x.dtype).unsqueeze(-1)
            pooled = (x * m).sum(1) / m.sum(1).clamp_min(1.0)
        return F.layer_norm(pooled, pooled.shape[-1:])

    def _shape(self, out: torch.Tensor) -> torch.Tensor:
        if self.granularity == "head":
            return out.view(*out.shape[:-1], self.num_heads, self.depth)
        return out

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """Policy logits ``(..., D)`` or ``(..., H, D)`` from states ``(..., d)``."""
        return self._shape(self.policy(state.to(self.policy.weight.dtype)))

    def reference_logits(self, state: torch.Tensor) -> torch.Tensor:
        state = state.to(self.ref_weight.dtype)
        return self._shape(F.linear(state, self.ref_weight, self.ref_bias))

    @torch.no_grad()
    def sync_reference(self) -> None:
        """Make the current policy the new GRPO reference."""
        self.ref_weight.copy_(self.policy.weight)
        self.ref_bias.copy_(self.policy.bias)
