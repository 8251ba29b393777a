"""The arithmetic of MAW (docs/design.md section 2, steps 1-3 and 6-7), as pure functions.

Shapes: ``q, k, v`` are ``(B, H, L, d_h)``; per-depth queries/keys are
``(B, H, D, L, r)``; scores and maps are ``(B, H, Lq, Lk, D)`` (depth last, as in
the original description); ``mask`` is a boolean ``(B, 1|H, Lq|1, Lk)`` with True
for keys a query may attend to.

The ``split`` variant cuts the head dimension into ``D`` contiguous chunks
(``torch.tensor_split``), which may differ in width by one. To keep everything a
single batched product, narrower chunks are padded with zero columns: a zero
column adds nothing to a dot product, and each depth is scaled by its own true
width ``1/sqrt(r_t)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def split_index(head_dim: int, depth: int, device: torch.device | None = None,
                rotary_dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Column indices of each depth chunk, padded with ``head_dim`` (a zero column).

    Returns ``index (D, r_max)`` and ``widths (D,)`` (float, the true chunk widths). ``rotary_dim``: the head's
    first ``rotary_dim`` columns carry rotary position embeddings that turn column ``i`` with ``i + rotary_dim/2``
    (transformers' ``rotate_half``; partial rotary leaves the rest unrotated), so a chunk takes whole pairs
    (:func:`column_units`): its score then still depends on the positions only through their difference.
    """
    units = column_units(head_dim, rotary_dim)
    if not 1 <= depth <= len(units):
        raise ValueError(f"depth {depth} must be between 1 and {len(units)} for a head of width {head_dim}"
                         + (" with rotary pairs" if rotary_dim else ""))
    parts = torch.arange(len(units), device="cpu").tensor_split(depth)  # on CPU: read back even under meta
    chunks = [join_units([units[i] for i in part.tolist()]) for part in parts]
    r_max = max(len(c) for c in chunks)
    index = torch.full((depth, r_max), head_dim, dtype=torch.long)
    for t, c in enumerate(chunks):
        index[t, : len(c)] = torch.tensor(c, dtype=torch.long)
    widths = torch.tensor([float(len(c)) for c in chunks])
    return index.to(device), widths.to(device)


def column_units(head_dim: int, rotary_dim: int = 0) -> list[tuple[int, ...]]:
    """The head's columns in the units a chunk may not cut: a rotary pair ``(i, i + rotary_dim/2)`` for each
    ``i < rotary_dim/2``, then each unrotated column alone (all of them without rotary). Plain ints: the tables
    are also built on the meta device (an export loading), where a tensor index has no value."""
    half = rotary_dim // 2
    return [(i, i + half) for i in range(half)] + [(j,) for j in range(2 * half, head_dim)]


def join_units(units: list[tuple[int, ...]]) -> list[int]:
    """A chunk's columns: the pairs' first columns, their partners, then the single columns."""
    pairs = [u for u in units if len(u) == 2]
    return [u[0] for u in pairs] + [u[1] for u in pairs] + [u[0] for u in units if len(u) == 1]


def nested_index(head_dim: int, depth: int, device: torch.device | None = None,
                 rotary_dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``nested`` variant: depth ``t`` takes the first ``r_t = d_h / 2^(D-1-t)`` columns.

    ``r_1 < ... < r_D = d_h`` (for ``d_h=32, D=4``: 4, 8, 16, 32), so the last depth is
    the whole head, i.e. the pretrained attention. Same return as :func:`split_index`; with ``rotary_dim``, depth
    ``t`` takes the first ``n / 2^(D-1-t)`` of the head's ``n`` units (:func:`column_units`), so rotated pairs
    stay together.
    """
    units = column_units(head_dim, rotary_dim)
    if not 1 <= depth or len(units) >> (depth - 1) < 1:
        raise ValueError(f"nested depth {depth} needs 2^(depth-1) <= {len(units)} for a head of width {head_dim}"
                         + (" with rotary pairs" if rotary_dim else ""))
    columns = [join_units(units[:len(units) >> (depth - 1 - t)]) for t in range(depth)]
    index = torch.full((depth, head_dim), head_dim, dtype=torch.long)
    for t, c in enumerate(columns):
        index[t, :len(c)] = torch.tensor(c, dtype=torch.long)
    widths = torch.tensor([float(len(c)) for c in columns])
    return index.to(device), widths.to(device)


def depth_units(head_dim: int, rotary_dim: int = 0) -> int:
    """How many units (:func:`column_units`) a head has: the most depths ``split`` can cut it into."""
    return len(column_units(head_dim, rotary_dim))


def max_nested_depth(head_dim: int, rotary_dim: int = 0) -> int:
    """The largest ``D`` the nested variant allows for a head of this width (``floor(log2 n) + 1`` for its ``n``
    units: ``d_h`` columns, or fewer when rotary columns go in pairs)."""
    return depth_units(head_dim, rotary_dim).bit_length()


def split_depths(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``(B, H, L, d_h) -> (B, H, D, L, r_max)`` by the chunk index (zero-padded)."""
    x_ext = F.pad(x, (0, 1))  # column d_h is the zero column
    return x_ext[..., index].permute(0, 1, 3, 2, 4)


def depth_scores(qd: torch.Tensor, kd: torch.Tensor, widths: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """5D scores ``S[b,h,i,j,t] = <Q_t,i, K_t,j> / sqrt(r_t)``, masked keys at -inf."""
    scale = widths.to(qd.dtype).rsqrt()
    s = torch.einsum("bhdir,bhdjr->bhijd", qd, kd) * scale
    if mask is not None:
        s = s.masked_fill(~mask.unsqueeze(-1), float("-inf"))
    return s


def depth_maps(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over keys (dim 3) for every depth; masked keys get exactly 0, no NaN."""
    maps = torch.softmax(scores, dim=3)
    if mask is not None:
        maps = maps.masked_fill(~mask.unsqueeze(-1), 0.0)
    return maps


def combine(maps: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``A_bar = sum_t w_t A[..., t]``; weights ``(B, D)`` or ``(B, H, D)``."""
    if weights.dim() == 2:
        weights = weights[:, None, :]
    return torch.einsum("bhijd,bhd->bhij", maps, weights.to(maps.dtype))


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis; masked entries exactly 0 and fully masked rows all 0."""
    if mask is None:
        return torch.softmax(scores, dim=-1)
    probs = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return probs.masked_fill(~mask, 0.0)


def chunk_scale_table(index: torch.Tensor, widths: torch.Tensor, head_dim: int) -> torch.Tensor:
    """``(D, d_h)``: row ``t`` is ``1/sqrt(r_t)`` on depth ``t``'s columns and 0 elsewhere.

    Multiplying a head's query by row ``t`` before ``Q K^T`` gives exactly depth ``t``'s
    scores: the zeroed columns add nothing to the dot product. This is the hard
    selection's "take only the chosen chunk": it keeps the query, key and value the same
    width, so PyTorch's fused attention kernels still apply (gathering the chunk into a
    narrower head makes CPU ``scaled_dot_product_attention`` fall back to its slow math
    path: 112 ms against 24 ms for B=32, H=12, L=256, d_h=32, r=8).
    """
    table = torch.zeros(index.shape[0], head_dim + 1)
    table.scatter_(1, index, widths.rsqrt()[:, None].expand_as(index).float())
    return table[:, :head_dim]


def per_head_choice(choice: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(B,)`` (one choice per sequence) or ``(B, H)`` -> ``(B, H)``."""
    return choice[:, None].expand(choice.shape[0], num_heads) if choice.dim() == 1 else choice


def hard_attention_probs(q_scaled: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The one chosen attention map ``(B, H, Lq, Lk)`` from an already scaled query."""
    return masked_softmax(torch.matmul(q_scaled, k.transpose(-1, -2).to(q_scaled.dtype)), mask)


def hard_attention_fused(
    q_scaled: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, dropout: float
) -> torch.Tensor:
    """One attention map through ``scaled_dot_product_attention`` (fused kernels), from a scaled query.

    Equal to ``hard_attention_probs(...) @ v``; a query whose keys are all masked gets 0, not NaN.
    """
    q = q_scaled
    out = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), attn_mask=mask, dropout_p=dropout, scale=1.0)
    if mask is not None:
        out = torch.nan_to_num(out, nan=0.0)
    return out


def map_entropy(probs: torch.Tensor, mask: torch.Tensor | None, query_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean row entropy of an attention map per sequence, ``(B, H, Lq, Lk) -> (B,)``.

    The ``focus`` reward is its negative: a focused map has low entropy.
    """
    ent = -(probs * torch.log(probs.clamp_min(1e-12))).sum(-1)  # (B, H, Lq)
    ent = ent.mean(1)  # over heads
    if query_mask is None:
        return ent.mean(-1)
    qm = query_mask.to(ent.dtype)
    return (ent * qm).sum(-1) / qm.sum(-1).clamp_min(1.0)
