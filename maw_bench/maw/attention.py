"""MAW self-attention as an ``nn.Module`` (DESIGN section 2), and its standard twin.

``MAWAttention`` maps a layer input ``(B, L, d)`` and a boolean key mask to the
per-head context ``(B, L, d)`` (before the output projection, as HF self-attention
modules do). It knows nothing about retrieval: the training loop reads
``last_route`` after a forward to build the GRPO objective.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from maw_bench.maw import scores as S
from maw_bench.maw.grpo import categorical_entropy, categorical_kl
from maw_bench.maw.router import DepthRouter
from maw_bench.maw.selection import Selection, parse_selection


@dataclass
class RouteRecord:
    """What one forward of a MAW layer chose, for GRPO, logs and plots.

    ``logits``: policy logits ``(B, D)`` or ``(B, H, D)`` (with gradient);
    ``choice``: sampled/argmax/fixed depth ``(B,)`` or ``(B, H)``, or None for mixtures;
    ``logp``, ``entropy``, ``kl``, ``value``: per sequence ``(B,)`` (summed over heads);
    ``weights``: the mixture weights actually used (detached);
    ``focus``: minus the mean row entropy of the combined map (when requested).
    """

    logits: torch.Tensor | None
    choice: torch.Tensor | None
    logp: torch.Tensor | None
    entropy: torch.Tensor | None
    kl: torch.Tensor | None
    value: torch.Tensor | None
    weights: torch.Tensor
    focus: torch.Tensor | None = None


def _per_sequence(x: torch.Tensor) -> torch.Tensor:
    """Sum a per-head quantity over heads: ``(B, H) -> (B,)``; ``(B,)`` passes through."""
    return x.sum(-1) if x.dim() == 2 else x


class MAWAttention(nn.Module):
    """Multi-Attention-Weight self-attention.

    Args:
        hidden_size, num_heads: the layer's width and heads (``d_h = d / H``).
        depth: ``D``, the number of attention maps per head.
        variant: ``split`` (chunks of the head's own Q/K; no new weights) or
            ``full`` (``D`` projections of width ``d_h``, initialised from the
            pretrained ones plus small noise).
        selection: ``grpo | gumbel | soft | uniform | fixed:<t>``.
        router: ``sequence`` or ``head``.
        tau: Gumbel-softmax temperature.
        dropout: attention-probability dropout (the layer's own).
        query, key, value: existing projections to adopt (pretrained weights).
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        depth: int,
        variant: str = "split",
        selection: str = "grpo",
        router: str = "sequence",
        tau: float = 1.0,
        dropout: float = 0.0,
        query: nn.Linear | None = None,
        key: nn.Linear | None = None,
        value: nn.Linear | None = None,
        init_noise: float = 1e-3,
    ) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden size {hidden_size} is not a multiple of {num_heads} heads")
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        if variant == "split" and not 1 <= depth <= self.head_dim:
            raise ValueError(f"split depth {depth} must be between 1 and the head width {self.head_dim}")
        if variant not in ("split", "full"):
            raise ValueError(f"variant must be split or full, got {variant!r}")
        self.depth = depth
        self.variant = variant
        self.selection: Selection = parse_selection(selection, depth)
        self.tau = tau
        self.dropout = nn.Dropout(dropout)
        self.value = value if value is not None else nn.Linear(hidden_size, hidden_size)
        query = query if query is not None else nn.Linear(hidden_size, hidden_size)
        key = key if key is not None else nn.Linear(hidden_size, hidden_size)
        if variant == "split":
            self.query, self.key = query, key
            index, widths = S.split_index(self.head_dim, depth)
        else:
            self.query_depth = self._depth_projection(query, depth, init_noise)
            self.key_depth = self._depth_projection(key, depth, init_noise)
            index, widths = torch.zeros(depth, 1, dtype=torch.long), torch.full((depth,), float(self.head_dim))
        self.register_buffer("chunk_index", index, persistent=False)
        self.register_buffer("chunk_widths", widths, persistent=False)
        if variant == "split":
            self.register_buffer("chunk_scale", S.chunk_scale_table(index, widths, self.head_dim), persistent=False)
        self.router = (
            DepthRouter(hidden_size, num_heads, depth, router) if self.selection.needs_router else None
        )
        self.force_full = False  # compute the 5D tensor even for hard choices (tests, ablations)
        self.want_focus = False  # compute the focus reward (set by the trainer for reward=focus)
        self.last_route: RouteRecord | None = None

    @staticmethod
    def _depth_projection(base: nn.Linear, depth: int, noise: float) -> nn.Linear:
        d_in, d_out = base.in_features, base.out_features
        proj = nn.Linear(d_in, depth * d_out)
        with torch.no_grad():
            w = base.weight.detach().repeat(depth, 1)
            b = base.bias.detach().repeat(depth)
            proj.weight.copy_(w + noise * w.std() * torch.randn_like(w))
            proj.bias.copy_(b)
        return proj

    # --------------------------------------------------------------- projections
    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, l, _ = t.shape
        return t.view(b, l, self.num_heads, self.head_dim).transpose(1, 2)

    def _depth_qk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """All depths: ``(B, H, D, L, r)`` queries and keys."""
        if self.variant == "split":
            q, k = self._heads(self.query(x)), self._heads(self.key(x))
            return S.split_depths(q, self.chunk_index), S.split_depths(k, self.chunk_index)
        b, l, _ = x.shape

        def proj(lin: nn.Linear) -> torch.Tensor:
            return lin(x).view(b, l, self.depth, self.num_heads, self.head_dim).permute(0, 3, 2, 1, 4)

        return proj(self.query_depth), proj(self.key_depth)

    def _chosen_qk(self, x: torch.Tensor, choice: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Only the chosen depth: a scaled query and a key ``(B, H, L, d_h)`` whose product is that depth's scores."""
        ch = S.per_head_choice(choice, self.num_heads)
        if self.variant == "split":
            q, k = self._heads(self.query(x)), self._heads(self.key(x))
            return q * self.chunk_scale[ch][:, :, None, :].to(q.dtype), k
        heads = torch.arange(self.num_heads, device=x.device)[None, :].expand_as(ch)

        def proj(lin: nn.Linear) -> torch.Tensor:  # the chosen depth's projection only, per sequence and head
            w = lin.weight.view(self.depth, self.num_heads, self.head_dim, self.hidden_size)[ch, heads]
            bias = lin.bias.view(self.depth, self.num_heads, self.head_dim)[ch, heads]
            return torch.einsum("bld,bhrd->bhlr", x, w.to(x.dtype)) + bias[:, :, None, :].to(x.dtype)

        return proj(self.query_depth) * self.head_dim**-0.5, proj(self.key_depth)

    # -------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x (B, L, d)``, ``mask`` bool ``(B, 1, Lq|1, Lk)`` (True = may attend) -> ``(B, L, d)``."""
        b, l, _ = x.shape
        token_mask = None if mask is None else mask[:, 0].any(1)  # (B, L) real tokens
        logits = values = ref_logits = None
        if self.router is not None:
            state = DepthRouter.state(x, token_mask)
            logits, values = self.router(state)
            logits = logits.float()
            if self.training:
                ref_logits = self.router.reference_logits(state).float()
        weights, choice = self.selection.choose(logits, b, self.num_heads, self.training, self.tau, x.device)

        v = self._heads(self.value(x))
        focus = None
        need_probs = self.want_focus and self.training
        if choice is not None and not self.force_full and not need_probs:
            # the common inference path: one slice, fused attention, never the 5D tensor
            q_scaled, k = self._chosen_qk(x, choice)
            self._record(logits, ref_logits, values, choice, weights, None)
            out = S.hard_attention_fused(q_scaled, k, v, mask, self.dropout.p if self.training else 0.0)
            return out.transpose(1, 2).reshape(b, l, self.hidden_size)
        if choice is not None and not self.force_full:
            q_scaled, k = self._chosen_qk(x, choice)
            probs = S.hard_attention_probs(q_scaled, k, mask)
        elif self._straight_through(weights):
            probs = self._straight_through_probs(x, weights, mask)
        else:
            if choice is not None:
                weights = F.one_hot(choice, self.depth).float()
            qd, kd = self._depth_qk(x)
            maps = S.depth_maps(S.depth_scores(qd, kd, self.chunk_widths, mask), mask)
            probs = S.combine(maps, weights)

        if need_probs:
            focus = -S.map_entropy(probs.detach().float(), mask, token_mask)
        self._record(logits, ref_logits, values, choice, weights, focus)

        probs = self.dropout(probs)
        out = torch.matmul(probs.to(v.dtype), v)
        return out.transpose(1, 2).reshape(b, l, self.hidden_size)

    def _straight_through(self, weights: torch.Tensor | None) -> bool:
        return self.training and self.selection.kind == "gumbel" and weights is not None and not self.force_full

    def _straight_through_probs(self, x: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Gumbel straight-through, cheaply: the same values and gradients as ``sum_t w_t A_t``.

        The forward value of the hard weights is one-hot, so the gradient reaching Q and K
        flows through the chosen map only; the router's gradient is ``<dL/dA_bar, A_t>``,
        which needs the other maps as constants. So: the chosen map with a graph, the
        ``D`` maps without one, and ``A_bar = A_c + sum_t (w_t - sg(w_t)) A_t`` (the second
        term is zero in value and carries the router's gradient).
        """
        choice = weights.argmax(-1)
        q_scaled, k = self._chosen_qk(x, choice)
        chosen = S.hard_attention_probs(q_scaled, k, mask)
        with torch.no_grad():
            qd, kd = self._depth_qk(x)
            maps = S.depth_maps(S.depth_scores(qd, kd, self.chunk_widths, mask), mask)
        return chosen + S.combine(maps, weights - weights.detach())

    def _record(self, logits, ref_logits, values, choice, weights, focus) -> None:
        logp = entropy = kl = None
        if logits is not None:
            log_probs = torch.log_softmax(logits, -1)
            if choice is not None:
                logp = _per_sequence(log_probs.gather(-1, choice.unsqueeze(-1)).squeeze(-1))
            entropy = _per_sequence(categorical_entropy(logits))
            if ref_logits is not None:
                kl = _per_sequence(categorical_kl(logits, ref_logits))
            values = _per_sequence(values.float()) if values is not None else None
        self.last_route = RouteRecord(
            logits=logits,
            choice=choice,
            logp=logp,
            entropy=entropy,
            kl=kl,
            value=values,
            weights=weights.detach() if weights is not None else F.one_hot(choice, self.depth).float(),
            focus=focus,
        )


class StandardAttention(nn.Module):
    """Ordinary multi-head self-attention with the same Q/K/V names as ``MAWAttention``.

    The standard arm of ``placement: append`` uses it, so both arms have the same
    parameters but the router.
    """

    def __init__(self, hidden_size: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.hidden_size, self.num_heads = hidden_size, num_heads
        self.head_dim = hidden_size // num_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.p = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, l, _ = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, l, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        out = S.hard_attention_fused(q * self.head_dim**-0.5, k, v, mask, self.p if self.training else 0.0)
        return out.transpose(1, 2).reshape(b, l, self.hidden_size)
