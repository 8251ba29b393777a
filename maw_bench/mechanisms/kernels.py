"""Mechanisms at an attention-interface site (``modeling/interface.py``): MAW, gated and differential attention
on the heads a family computed itself (fused maps, rotary embeddings, q/k norms and grouped key/value heads
already applied), for families without a BERT self-attention (DistilBERT, MobileBERT, ModernBERT, Qwen3 ...).

Each kernel is a child module of the attention module it changes (its weights save, move and train with the
model) and is called by the ``maw_bench`` attention function as ``attend(module, q, k, v, mask, dropout=,
scaling=, ...)``, returning what transformers' ``sdpa`` returns: ``(B, L, H, d_h)`` and no weights. The layer
input it needs (router, gate, second map) comes from its :class:`LayerInput`. At initialisation each one
computes exactly what the site computed before: MAW's last nested depth is the whole head at the site's own
scaling, the gate is 1, lambda is 0.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from maw_bench.maw.attention import MAWAttention
from maw_bench.mechanisms.gated import zero_linear
from maw_bench.modeling.interface import LayerInput, Site, full_mask, repeat_heads, rotate, sdpa_forward


class SiteKernel(nn.Module):
    """What every kernel shares: its site, and the layer input held while its module runs."""

    def __init__(self, site: Site) -> None:
        super().__init__()
        self.site = site
        self.inputs: LayerInput | None = None

    def bind(self, module: nn.Module) -> None:
        """Become ``module``'s mechanism and hold its input during its forward."""
        from maw_bench.modeling.interface import MECHANISM_ATTR

        module.add_module(MECHANISM_ATTR, self)
        self.inputs = LayerInput(module)

    def layer_input(self) -> tuple[torch.Tensor, tuple | None]:
        assert self.inputs is not None, "a kernel attends only once bound to its module"
        return self.inputs.current()


class MAWKernel(SiteKernel):
    """MAW on the site's heads: split or nested depths (rotary pairs kept together), any selection strategy."""

    def __init__(self, site: Site, options: dict) -> None:
        super().__init__(site)
        self.maw = MAWAttention(site.input_width, site.num_heads, projections=False, head_dim=site.head_dim,
                                rotary_dim=site.rotary_dim, **options)

    def attend(self, module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
               **kwargs):
        if kwargs.get("position_bias") is not None:  # refused at config check (Site.mask_bias); never dropped
            raise RuntimeError(f"{type(module).__name__} adds a position bias to its scores, which MAW's would drop")
        x, _ = self.layer_input()
        mask = full_mask(module, attention_mask, query, key, kwargs.get("is_causal"))
        heads, width = query.shape[1], query.shape[-1]
        factor = (scaling if scaling is not None else width**-0.5) * width**0.5  # MAW scales by 1/sqrt(chunk width)
        q = query * factor if abs(factor - 1.0) > 1e-12 else query
        out = self.maw.attend(x, q, repeat_heads(key, heads), repeat_heads(value, heads), mask, dropout)
        return out.transpose(1, 2).contiguous(), None


class GatedKernel(SiteKernel):
    """Gated attention (``mechanisms/gated.py``) at a site: ``2 sigmoid(x W + b)`` per head or channel, 1 at init."""

    def __init__(self, site: Site, granularity: str = "head") -> None:
        super().__init__(site)
        self.granularity = granularity
        self.gate = zero_linear(site.input_width, site.num_heads if granularity == "head"
                                else site.num_heads * site.head_dim)

    def added_parameters(self) -> list[nn.Parameter]:
        return list(self.gate.parameters())

    def attend(self, module, query, key, value, attention_mask, **kwargs):
        out, weights = sdpa_forward()(module, query, key, value, attention_mask, **kwargs)  # (B, L, H, d_h)
        x, _ = self.layer_input()
        g = 2.0 * torch.sigmoid(self.gate(x)).to(out.dtype)
        if self.granularity == "head":
            return out * g.unsqueeze(-1), weights
        return (out.flatten(2) * g).view_as(out), weights


class DiffKernel(SiteKernel):
    """Differential attention (``mechanisms/diff.py``) at a site. The second map's query and key start as the
    site's own (a learned correction from the layer input, zero at init, rotated as the site rotates its heads,
    so the second map's scores too depend on positions only through their difference), and lambda is 0."""

    def __init__(self, site: Site, lambda_init: float = 0.0) -> None:
        super().__init__(site)
        self.query2 = zero_linear(site.input_width, site.num_heads * site.head_dim)
        self.key2 = zero_linear(site.input_width, site.num_kv_heads * site.head_dim)
        self.lam = nn.Parameter(torch.full((site.num_heads,), float(lambda_init)))

    def added_parameters(self) -> list[nn.Parameter]:
        return [*self.query2.parameters(), *self.key2.parameters(), self.lam]

    def attend(self, module, query, key, value, attention_mask, dropout: float = 0.0, **kwargs):
        sdpa = sdpa_forward()
        out, weights = sdpa(module, query, key, value, attention_mask, dropout=dropout, **kwargs)
        if not (self.lam.requires_grad or bool(self.lam.detach().ne(0).any())):  # a frozen 0 subtracts nothing
            return out, weights
        x, rope = self.layer_input()

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(*t.shape[:2], -1, self.site.head_dim).transpose(1, 2).to(query.dtype)

        q2 = query + rotate(heads(self.query2(x)), rope)
        k2 = key + rotate(heads(self.key2(x)), rope)
        second, _ = sdpa(module, q2, k2, value, attention_mask, dropout=0.0, **kwargs)
        return out - self.lam.to(out.dtype).view(1, 1, -1, 1) * second, weights
