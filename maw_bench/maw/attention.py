"""MAW self-attention as an ``nn.Module`` (docs/design.md section 2), and its standard twin.

``MAWAttention`` maps a layer input ``(B, L, d)`` and a boolean key mask to the
per-head context ``(B, L, d)`` (before the output projection, as HF self-attention
modules do). It knows nothing about retrieval. What a forward chose is handed to the
``RouteRecorder`` of that call (the encoder attaches one for the duration of its own
forward and returns the records in its output), so no caller reads state back from
the module afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from maw_bench.maw import scores as S
from maw_bench.maw.grpo import categorical_entropy, choice_log_prob
from maw_bench.maw.router import DepthRouter
from maw_bench.maw.selection import Pick, SelectionParams, SelectionStrategy, parse_selection

VARIANTS = ("split", "full", "nested")


@dataclass
class RouteRecord:
    """What one forward of one MAW layer chose, for GRPO, logs and plots.

    ``layer``: position of the MAW layer, bottom to top; ``logits``: policy logits
    ``(B, D)`` or ``(B, H, D)`` (with gradient) or None without a router; ``state``: the
    router's input ``(B, d)``; ``choice``: depth ``(B,)`` or ``(B, H)``, or None for a
    mixture; ``weights``: the mixture actually used (detached, one-hot for a hard
    choice); ``focus``: minus the mean row entropy of the map used (when requested).
    """

    layer: int
    logits: torch.Tensor | None
    state: torch.Tensor | None
    choice: torch.Tensor | None
    weights: torch.Tensor
    focus: torch.Tensor | None = None

    @property
    def per_head(self) -> bool:
        return self.weights.dim() == 3

    def logp(self) -> torch.Tensor:
        """Log-probability of the choice per sequence, detached (the GRPO "old" policy)."""
        assert self.logits is not None and self.choice is not None
        return choice_log_prob(self.logits.detach(), self.choice, self.choice.dim() == 2).detach()

    def entropy(self) -> torch.Tensor:
        assert self.logits is not None
        e = categorical_entropy(self.logits.detach())
        return e.sum(-1) if e.dim() == 2 else e

    def chosen(self) -> torch.Tensor | None:
        """The depth that carried the most weight, ``(B,)`` or ``(B, H)``; None for an even mixture
        (``uniform``), where no depth did (an argmax would report depth 0 for every text)."""
        if self.choice is not None:
            return self.choice
        if bool((self.weights == self.weights[..., :1]).all()):
            return None
        return self.weights.argmax(-1)


@dataclass
class RouteRecorder:
    """Collects the route records of one encoder call, sample by sample.

    ``uniforms[g][layer]``: pre-drawn random numbers ``(B, H)`` for GRPO's depth draws
    of sample ``g`` (the group replays the layers with the same dropout masks, so the
    draws cannot come from the replayed random stream); ``generator``: the source of
    any other routing noise (Gumbel), None for the global stream; ``focus``: compute
    the focus reward of each map.
    """

    focus: bool = False
    uniforms: list[list[torch.Tensor]] | None = None
    generator: torch.Generator | None = None
    sample: int = 0
    records: list[list[RouteRecord]] = field(default_factory=lambda: [[]])
    # layer -> (its input, its Q/K/V heads): a group's samples replay a layer on the same input tensor,
    # so its projections are computed once and shared (gradients from every sample add up in them)
    projections: dict[int, tuple[torch.Tensor, tuple]] = field(default_factory=dict)
    # choices decided before the forward (a group's distinct choices, run once: modeling/group_forward.py)
    forced: torch.Tensor | None = None

    def next_sample(self) -> None:
        self.sample += 1
        self.records.append([])

    def uniforms_for(self, layer: int) -> torch.Tensor | None:
        if self.uniforms is None:
            return None
        return self.uniforms[self.sample][layer]

    def add(self, record: RouteRecord) -> None:
        self.records[self.sample].append(record)

    def aside(self, forced: torch.Tensor, run):
        """``(run(), its route records)``: a forward whose MAW layer takes ``forced`` choices and whose records
        are kept apart from the group's samples (the distinct choices of a group, run once)."""
        saved = self.records, self.sample
        self.records, self.sample, self.forced = [[]], 0, forced
        try:
            out = run()
        finally:
            records, (self.records, self.sample), self.forced = self.records[0], saved, None
        return out, records

    def shared(self, layer: int, x: torch.Tensor, compute) -> tuple:
        """``compute(x)``, or what it gave for this very input tensor earlier in the call."""
        hit = self.projections.get(layer)
        if hit is not None and hit[0] is x:
            return hit[1]
        value = compute(x)
        self.projections[layer] = (x, value)
        return value


class MAWAttention(nn.Module):
    """Multi-Attention-Weight self-attention.

    Args:
        hidden_size, num_heads: the layer's width and heads (``d_h = d / H``).
        depth: ``D``, the number of attention maps per head.
        variant: ``split`` (contiguous chunks of the head's own Q/K; no new weights),
            ``nested`` (depth ``t`` uses the first ``r_t`` columns, ``r_D = d_h``; no new
            weights, and the last depth is the pretrained head) or ``full`` (``D``
            projections of width ``d_h``, initialised from the pretrained ones plus
            ``init_noise`` x their std of Gaussian noise).
        selection: a name from the strategy registry (``grpo``, ``gumbel``, ``fixed:<t>``...).
        router: ``sequence`` or ``head``; ``detach_router_input``: see ``DepthRouter``.
        params: the strategies' knobs (temperature, GRPO group, clip ...).
        dropout: attention-probability dropout (the layer's own).
        query, key, value: existing projections to adopt (pretrained weights); new
            ones are built in the order query, key, value (as ``StandardAttention``
            does, so both arms of ``append`` start from the same weights).
        projections: False for a layer whose model computes the heads itself and hands them
            to :meth:`attend` (transformers' attention interface: ``modeling/interface.py``);
            it then owns no query/key/value and ``hidden_size`` is only the router's input width.
        head_dim: the head width when it is not ``hidden_size / num_heads`` (Qwen3).
        rotary_dim: how many of a head's first columns carry rotary embeddings (0: none); depth chunks keep
            the rotated pairs together (``maw/scores.py`` ``column_units``).
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        depth: int,
        variant: str = "split",
        selection: str | SelectionStrategy = "grpo",
        router: str = "sequence",
        params: SelectionParams | None = None,
        dropout: float = 0.0,
        query: nn.Linear | None = None,
        key: nn.Linear | None = None,
        value: nn.Linear | None = None,
        init_noise: float = 0.05,
        detach_router_input: bool = True,
        router_init_last_prob: float = 0.0,
        projections: bool = True,
        head_dim: int | None = None,
        rotary_dim: int = 0,
    ) -> None:
        super().__init__()
        if projections and hidden_size % num_heads:
            raise ValueError(f"hidden size {hidden_size} is not a multiple of {num_heads} heads")
        if variant not in VARIANTS or (variant == "full" and not projections):
            raise ValueError(f"variant must be one of {', '.join(VARIANTS[:3 if projections else 2])}, got {variant!r}")
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.head_dim = head_dim or hidden_size // num_heads
        self.rotary_dim = rotary_dim
        units = S.depth_units(self.head_dim, rotary_dim)
        if variant == "split" and not 1 <= depth <= units:
            raise ValueError(f"split depth {depth} must be between 1 and the head's {units} columns"
                             + (" (rotary pairs count once)" if rotary_dim else ""))
        self.depth = depth
        self.variant = variant
        # one strategy object per encoder (modeling passes it in); a name is parsed here for standalone use
        self.strategy: SelectionStrategy = (selection if isinstance(selection, SelectionStrategy)
                                            else parse_selection(selection, depth, params))
        self.dropout = nn.Dropout(dropout)
        if not projections:  # the model hands the heads in; only the router and the tables live here
            self.value = None
        else:
            self._adopt(query, key, value, init_noise)
        for name, table in self._depth_tables().items():
            self.register_buffer(name, table, persistent=False)
        self.router = (
            DepthRouter(hidden_size, num_heads, depth, router, detach_router_input, router_init_last_prob)
            if self.strategy.needs_router else None
        )
        self.layer_index = 0  # position among the encoder's MAW layers (set by the encoder)
        self.force_full = False  # compute the 5D tensor even for hard choices (tests, ablations)
        self.recorder: RouteRecorder | None = None  # attached by the encoder for one call

    def _adopt(self, query: nn.Linear | None, key: nn.Linear | None, value: nn.Linear | None, init_noise: float) -> None:
        """The layer's own projections: the pretrained ones adopted, or new ones (query, key, value in that order)."""
        hidden_size = self.hidden_size
        depth = self.depth
        variant = self.variant
        query = query if query is not None else nn.Linear(hidden_size, hidden_size)
        key = key if key is not None else nn.Linear(hidden_size, hidden_size)
        self.value = value if value is not None else nn.Linear(hidden_size, hidden_size)
        if variant == "full":
            self.query_depth = self._depth_projection(query, depth, init_noise)
            self.key_depth = self._depth_projection(key, depth, init_noise)
        else:
            self.query, self.key = query, key

    def _depth_tables(self) -> dict[str, torch.Tensor]:
        """The fixed tables of the depths' head columns (derived from the shapes, so not saved)."""
        if self.variant == "full":
            return {"chunk_index": torch.zeros(self.depth, 1, dtype=torch.long),
                    "chunk_widths": torch.full((self.depth,), float(self.head_dim))}
        make = S.split_index if self.variant == "split" else S.nested_index
        index, widths = make(self.head_dim, self.depth, rotary_dim=self.rotary_dim)
        return {"chunk_index": index, "chunk_widths": widths,
                "chunk_scale": S.chunk_scale_table(index, widths, self.head_dim)}

    @torch.no_grad()
    def reset_buffers(self) -> None:
        """Recompute the tables in place (a loader that allocates buffers without running ``__init__`` needs it)."""
        for name, table in self._depth_tables().items():
            getattr(self, name).copy_(table)

    def added_parameters(self) -> list[nn.Parameter]:
        """The weights this layer adds to steer attention: its router's (none for a control). The full variant's
        depth projections are copies of the pretrained query/key and train, and take LoRA, as those do."""
        return list(self.router.parameters()) if self.router is not None else []

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

    def _projections(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """Query, key (None for ``full``, whose depths have their own) and value heads ``(B, H, L, d_h)``."""
        v = self._heads(self.value(x))
        if self.variant == "full":
            return None, None, v
        return self._heads(self.query(x)), self._heads(self.key(x)), v

    def _qk_heads(
        self, x: torch.Tensor, q: torch.Tensor | None, k: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The head projections ``q``, ``k`` when at hand, else computed from ``x`` (split and nested only)."""
        if q is None or k is None:
            q, k = self._heads(self.query(x)), self._heads(self.key(x))
        return q, k

    def _depth_qk(
        self, x: torch.Tensor, q: torch.Tensor | None = None, k: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """All depths: ``(B, H, D, L, r)`` queries and keys (``q``, ``k``: the head projections, if at hand)."""
        if self.variant != "full":
            q, k = self._qk_heads(x, q, k)
            return S.split_depths(q, self.chunk_index), S.split_depths(k, self.chunk_index)
        b, l, _ = x.shape

        def proj(lin: nn.Linear) -> torch.Tensor:
            return lin(x).view(b, l, self.depth, self.num_heads, self.head_dim).permute(0, 3, 2, 1, 4)

        return proj(self.query_depth), proj(self.key_depth)

    def _chosen_qk(
        self, x: torch.Tensor, choice: torch.Tensor, q: torch.Tensor | None = None, k: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Only the chosen depth: a scaled query and a key ``(B, H, L, d_h)`` whose product is that depth's scores."""
        ch = S.per_head_choice(choice, self.num_heads)
        if self.variant != "full":
            q, k = self._qk_heads(x, q, k)
            return q * self.chunk_scale[ch][:, :, None, :].to(q.dtype), k
        heads = torch.arange(self.num_heads, device=x.device)[None, :].expand_as(ch)

        def proj(lin: nn.Linear) -> torch.Tensor:  # the chosen depth's projection only, per sequence and head
            w = lin.weight.view(self.depth, self.num_heads, self.head_dim, self.hidden_size)[ch, heads]
            bias = lin.bias.view(self.depth, self.num_heads, self.head_dim)[ch, heads]
            return torch.einsum("bld,bhrd->bhlr", x, w.to(x.dtype)) + bias[:, :, None, :].to(x.dtype)

        return proj(self.query_depth) * self.head_dim**-0.5, proj(self.key_depth)

    def depth_maps(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, q: torch.Tensor | None = None,
        k: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Every depth's attention map ``(B, H, L, L, D)`` (``q``, ``k``: the head projections, if at hand)."""
        qd, kd = self._depth_qk(x, q, k)
        return S.depth_maps(S.depth_scores(qd, kd, self.chunk_widths, mask), mask)

    # -------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x (B, L, d)``, ``mask`` bool ``(B, 1, Lq|1, Lk)`` (True = may attend) -> ``(B, L, d)``."""
        b, l, _ = x.shape
        rec = self.recorder
        # a group's samples replay this layer on one input: its projections are computed once per call
        q, k, v = rec.shared(self.layer_index, x, self._projections) if rec is not None else self._projections(x)
        out = self.attend(x, q, k, v, mask, self.dropout.p if self.training else 0.0)
        return out.transpose(1, 2).reshape(b, l, self.hidden_size)

    def attend(self, x: torch.Tensor, q: torch.Tensor | None, k: torch.Tensor | None, v: torch.Tensor,
               mask: torch.Tensor | None, dropout: float) -> torch.Tensor:
        """The routed attention on given heads ``(B, H, L, d_h)`` (``q``, ``k`` unscaled; None for ``full``):
        ``x`` is the layer's input (the router's), ``dropout`` the probability this call applies. -> ``(B, H, L, d_h)``."""
        b = x.shape[0]
        token_mask = None if mask is None else mask[:, 0].any(1)  # (B, L) real tokens
        rec = self.recorder
        logits = state = None
        if self.router is not None:
            state = self.router.state(x, token_mask)
            logits = self.router(state).float()
        uniforms = rec.uniforms_for(self.layer_index) if rec is not None else None
        generator = rec.generator if rec is not None else None
        forced = rec.forced if rec is not None else None
        pick = Pick(choice=forced) if forced is not None else self.strategy.pick(
            logits, b, self.training, x.device, uniforms, generator)
        choice, weights = pick.choice, pick.weights

        need_focus = rec is not None and rec.focus and self.training
        if choice is not None and not self.force_full and not need_focus:
            # the common path: one slice, fused attention, never the 5D tensor
            q_scaled, k_used = self._chosen_qk(x, choice, q, k)
            self._record(logits, state, choice, weights, None)
            return S.hard_attention_fused(q_scaled, k_used, v, mask, dropout)
        if choice is not None and not self.force_full:
            q_scaled, k_used = self._chosen_qk(x, choice, q, k)
            probs = S.hard_attention_probs(q_scaled, k_used, mask)
        elif pick.straight_through and not self.force_full:
            assert weights is not None
            probs = self._straight_through_probs(x, weights, mask, q, k)
        else:
            if choice is not None:
                weights = F.one_hot(choice, self.depth).float()
            assert weights is not None
            probs = S.combine(self.depth_maps(x, mask, q, k), weights)

        focus = -S.map_entropy(probs.detach().float(), mask, token_mask) if need_focus else None
        self._record(logits, state, choice, weights, focus)
        probs = F.dropout(probs, dropout, training=dropout > 0)
        return torch.matmul(probs.to(v.dtype), v)

    def routed(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, recorder: RouteRecorder | None = None
    ) -> tuple[torch.Tensor, RouteRecord]:
        """One forward on its own, with its route record (for using the layer outside an encoder)."""
        rec = recorder or RouteRecorder()
        self.recorder = rec
        try:
            out = self(x, mask)
        finally:
            self.recorder = None
        return out, rec.records[rec.sample][-1]

    def _straight_through_probs(
        self, x: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor | None,
        q: torch.Tensor | None = None, k: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Gumbel straight-through, cheaply: the same values and gradients as ``sum_t w_t A_t``.

        The forward value of the hard weights is one-hot, so the gradient reaching Q and K
        flows through the chosen map only; the router's gradient is ``<dL/dA_bar, A_t>``,
        which needs the other maps as constants. So: the chosen map with a graph, the
        ``D`` maps without one, and ``A_bar = A_c + sum_t (w_t - sg(w_t)) A_t`` (the second
        term is zero in value and carries the router's gradient).
        """
        choice = weights.argmax(-1)
        q_scaled, k_used = self._chosen_qk(x, choice, q, k)
        chosen = S.hard_attention_probs(q_scaled, k_used, mask)
        with torch.no_grad():
            maps = self.depth_maps(x, mask, q, k)
        return chosen + S.combine(maps, weights - weights.detach())

    def _record(self, logits, state, choice, weights, focus) -> None:
        if self.recorder is None:
            return
        used = weights.detach() if weights is not None else F.one_hot(choice, self.depth).float()
        self.recorder.add(RouteRecord(self.layer_index, logits, state, choice, used, focus))


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
