"""Plug MAW into a HuggingFace encoder: in place (``replace``) or on top (``append``)."""

from __future__ import annotations

import torch.nn as nn

from maw_bench.config import MAWConfig
from maw_bench.errors import UserError
from maw_bench.maw import SelectionParams, parse_selection
from maw_bench.maw.hf_layers import AppendedBlock, HFMAWSelfAttention
from maw_bench.maw.scores import max_nested_depth


def maw_options(maw: MAWConfig) -> dict:
    """The ``MAWAttention`` keyword arguments a ``maw`` config section stands for (all but the shapes)."""
    g = maw.grpo
    params = SelectionParams(tau=maw.gumbel.tau, group_size=g.group_size, clip=g.clip, kl=g.kl, entropy=g.entropy,
                             iterations=g.iterations)
    return {  # the strategy parsed once: every MAW layer of the encoder shares it
        "depth": maw.depth, "variant": maw.variant, "selection": parse_selection(maw.selection, maw.depth, params),
        "router": maw.router.granularity,
        "params": params, "init_noise": maw.init_noise, "detach_router_input": maw.router.detach_input,
        "router_init_last_prob": initial_last_prob(maw),
    }


def initial_last_prob(maw: MAWConfig) -> float:
    """``maw.router.init_last_prob`` with ``-1`` (auto) resolved: 0.7 for nested, uniform (0) otherwise."""
    if maw.router.init_last_prob >= 0:
        return maw.router.init_last_prob
    return 0.7 if maw.variant == "nested" else 0.0


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The encoder's layers (their attention possibly replaced already); a model without them is refused as
    ``modeling/sites.py`` says. Before a replacement, :func:`maw_bench.modeling.sites.replace_layers` checks more."""
    from maw_bench.modeling.sites import replace_layers

    layers = getattr(getattr(model, "encoder", None), "layer", None)
    return layers if isinstance(layers, nn.ModuleList) and len(layers) else replace_layers(model)


def resolve_layers(spec: list[int] | str, num_layers: int) -> list[int]:
    """``[-1] -> [num_layers - 1]``; ``'all'`` -> every layer; out of range is a ``UserError``."""
    if spec == "all":
        return list(range(num_layers))
    out = []
    for i in spec:
        j = i + num_layers if i < 0 else i
        if not 0 <= j < num_layers:
            raise UserError(f"maw.layers has {i}, but the encoder has {num_layers} layers; use -{num_layers}..{num_layers - 1}.")
        out.append(j)
    return sorted(set(out))


def check_depth(maw: MAWConfig, hidden_size: int, num_heads: int) -> None:
    head_dim = hidden_size // num_heads
    if maw.variant == "split" and maw.depth > head_dim:
        raise UserError(
            f"maw.depth={maw.depth} does not fit a head of width {head_dim} with variant=split; "
            f"use maw.depth <= {head_dim} or maw.variant=full."
        )
    if maw.variant == "nested" and maw.depth > max_nested_depth(head_dim):
        raise UserError(
            f"maw.depth={maw.depth} is too deep for variant=nested on a head of width {head_dim} (widths halve per depth); "
            f"use maw.depth <= {max_nested_depth(head_dim)}."
        )


def replace_attention(model: nn.Module, maw: MAWConfig) -> list[int]:
    """Swap self-attention of ``maw.layers`` for MAW in place; return the layer indices."""
    from maw_bench.modeling.sites import replace_layers

    layers = replace_layers(model)
    check_depth(maw, model.config.hidden_size, model.config.num_attention_heads)
    idx = resolve_layers(maw.layers, len(layers))
    options = maw_options(maw)
    for i in idx:
        layers[i].attention.self = HFMAWSelfAttention(layers[i].attention.self, options)
    return idx


def build_appended(model: nn.Module, maw: MAWConfig, use_maw: bool, attention=None) -> nn.ModuleList:
    """``maw.num_blocks`` blocks for the top of the encoder; MAW ones only for the MAW arm, and the standard
    blocks with ``attention.mechanism`` (gated, diff) when one is set."""
    cfg = model.config
    heads = maw.num_heads or cfg.num_attention_heads
    if cfg.hidden_size % heads:
        raise UserError(f"maw.num_heads={heads} does not divide the hidden size {cfg.hidden_size}; pick a divisor.")
    if use_maw:
        check_depth(maw, cfg.hidden_size, heads)
    eps, drop = norm_eps(cfg), attention_dropout(cfg)
    options = maw_options(maw) if use_maw else None
    blocks = nn.ModuleList(AppendedBlock(cfg.hidden_size, heads, options, drop, eps) for _ in range(maw.num_blocks))
    if not use_maw and attention is not None and attention.mechanism != "standard":
        from maw_bench.mechanisms import mechanism_in_blocks

        mechanism_in_blocks(blocks, attention)
    return blocks


# what each family calls its LayerNorm epsilon and its attention dropout (BERT, ModernBERT, Llama/Qwen, GPT-2/T5 ...)
_EPS_NAMES = ("layer_norm_eps", "norm_eps", "layer_norm_epsilon", "rms_norm_eps")
_ATTENTION_DROPOUT_NAMES = ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop", "attention_probs_dropout")


def norm_eps(config) -> float:
    """The backbone's own LayerNorm epsilon for the appended blocks' pre-norm (BERT's 1e-12 if it names none)."""
    for name in _EPS_NAMES:
        value = getattr(config, name, None)
        if isinstance(value, float | int) and not isinstance(value, bool) and value > 0:
            return float(value)
    return 1e-12


def attention_dropout(config) -> float:
    """The backbone's own attention dropout for the appended blocks (0 if it names none)."""
    for name in _ATTENTION_DROPOUT_NAMES:
        value = getattr(config, name, None)
        if isinstance(value, float | int) and not isinstance(value, bool):
            return float(value)
    return 0.0
