"""Keep the dropout masks of a forward and apply them again to any subset of its rows.

GRPO's samples share every dropout mask (docs/design.md section 2, step 5). To run the MAW
layer and what lies above it only on the (sequence, depth) pairs a group has not computed
yet, each of those rows must get the masks the whole-batch forward gave it; a fused
attention kernel draws its masks inside the kernel, and on a different batch shape the
random stream would give other masks. So the whole-batch forward runs under this tape,
a ``TorchFunctionMode`` that sees each ``F.dropout`` and each ``F.scaled_dot_product_attention``
with dropout: in ``record`` it draws the mask with ``torch.native_dropout`` (on the CPU the
same draws as the native call: one ``bernoulli_`` over the same shape, so the random stream
and the masks are today's) and keeps it; in ``replay`` it applies the kept masks of the
given rows and draws nothing. Attention is then computed as PyTorch's own math path
computes it (scale split over Q and K, boolean masks as ``-inf``, a softmax that gives 0 on
fully masked rows).

``faithful`` turns False where a recorded call could not be kept (a fused kernel on an
accelerator, whose masks come from inside it; a dropout whose first axis is not the batch;
grouped-query attention); the caller then re-runs every sample as before.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


def _arg(args: tuple, kwargs: dict, pos: int, name: str, default):
    return args[pos] if len(args) > pos else kwargs.get(name, default)


class DropoutTape(TorchFunctionMode):
    """States: ``pass`` (calls go through untouched), ``record``, ``replay`` (set ``rows`` first); leaving the
    ``with`` scope returns it to ``pass``."""

    def __init__(self, batch: int) -> None:
        super().__init__()
        self.batch = batch
        self.state = "pass"
        self.masks: list[torch.Tensor] = []
        self.rows: torch.Tensor | None = None
        self.cursor = 0
        self.faithful = True

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self.state = "pass"  # leaving the scope ends a record or a replay

    def replay(self, rows: torch.Tensor) -> None:
        """Apply the kept masks of ``rows`` (indices into the recorded batch, repeats allowed) from the first call on."""
        self.state, self.rows, self.cursor = "replay", rows, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.state != "pass":
            if func is F.dropout and _arg(args, kwargs, 2, "training", True):
                p = float(_arg(args, kwargs, 1, "p", 0.5))
                if 0 < p and not _arg(args, kwargs, 3, "inplace", False):
                    return self._keep(args[0], p)[0]
            elif func is F.scaled_dot_product_attention and float(_arg(args, kwargs, 4, "dropout_p", 0.0)) > 0:
                if self._can_keep_attention(args, kwargs):
                    return self._attention(args, kwargs)
        if self.state == "record" and func is F.dropout and _arg(args, kwargs, 3, "inplace", False):
            self.faithful = False
        return func(*args, **kwargs)

    # ------------------------------------------------------------------ masks
    def _keep(self, x: torch.Tensor, p: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x with dropout, the mask)``: drawn and kept in ``record``, the kept rows in ``replay``."""
        if self.state == "record":
            if x.dim() == 0 or x.shape[0] != self.batch:
                self.faithful = False  # not a batch-first tensor: its rows cannot be picked out later
            out, keep = torch.native_dropout(x, p, True)
            self.masks.append(keep)
            return out, keep
        if self.cursor >= len(self.masks):
            raise RuntimeError("dropout tape: the replayed forward calls dropout more often than the recorded one")
        keep = self.masks[self.cursor][self.rows]
        self.cursor += 1
        if keep.shape != x.shape:
            raise RuntimeError(f"dropout tape: replayed shape {tuple(x.shape)} is not the kept {tuple(keep.shape)}")
        return x.mul(keep).mul_(1.0 / (1.0 - p)), keep  # what native_dropout computes from that mask

    # -------------------------------------------------------------- attention
    def _can_keep_attention(self, args: tuple, kwargs: dict) -> bool:
        q = args[0]
        if _arg(args, kwargs, 7, "enable_gqa", False) or (self.state == "record" and q.device.type != "cpu"):
            if self.state == "record":
                self.faithful = False  # a fused kernel draws its masks inside: keep the native call
            return False
        return True

    def _attention(self, args: tuple, kwargs: dict) -> torch.Tensor:
        """``softmax(q k^T * scale + mask)`` with the kept dropout, ``@ v``: PyTorch's math path."""
        q, k, v = args[:3]
        attn_mask = _arg(args, kwargs, 3, "attn_mask", None)
        p = float(_arg(args, kwargs, 4, "dropout_p", 0.0))
        is_causal = bool(_arg(args, kwargs, 5, "is_causal", False))
        scale = _arg(args, kwargs, 6, "scale", None)
        kind = q.device.type
        if torch.is_autocast_enabled(kind) and q.dtype == torch.float32:  # as autocast casts the fused call
            low = torch.get_autocast_dtype(kind)
            q, k, v = q.to(low), k.to(low), v.to(low)
        with torch.autocast(kind, enabled=False):
            s = math.sqrt(scale if scale is not None else 1.0 / math.sqrt(q.shape[-1]))
            attn = torch.matmul(q * s, k.transpose(-2, -1) * s)
            if is_causal:
                causal = torch.ones(attn.shape[-2:], dtype=torch.bool, device=attn.device).tril()
                attn = attn.masked_fill(~causal, float("-inf"))
            if attn_mask is not None:
                attn = (attn.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool
                        else attn + attn_mask.to(attn.dtype))
            attn = torch.ops.aten._safe_softmax(attn, -1)
            attn, _ = self._keep(attn, p)
            return torch.matmul(attn, v)
