"""What an arm is, checked against the model: the spec ``modeling/plug.py`` builds it from (``arm_spec``)."""

from __future__ import annotations

import dataclasses

import torch.nn as nn

from maw_bench.config import MAWConfig
from maw_bench.errors import UserError
from maw_bench.maw import SelectionParams, parse_selection
from maw_bench.maw.scores import depth_units, max_nested_depth


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
    check_head_depth(maw, hidden_size // num_heads)


def check_head_depth(maw: MAWConfig, head_dim: int, rotary_dim: int = 0) -> None:
    """``maw.depth`` against a head of ``head_dim`` columns (with rotary embeddings on ``rotary_dim`` of them, a
    rotated pair is one unit a chunk may not cut: ``maw/scores.py`` ``column_units``)."""
    pairs = " in rotary pairs" if rotary_dim else ""
    limit = depth_units(head_dim, rotary_dim)
    if maw.variant == "split" and maw.depth > limit:
        raise UserError(
            f"maw.depth={maw.depth} does not fit a head of width {head_dim}{pairs} with variant=split; "
            f"use maw.depth <= {limit}" + (" (variant=full needs a BERT self-attention)." if rotary_dim else
                                            " or maw.variant=full.")
        )
    if maw.variant == "nested" and maw.depth > max_nested_depth(head_dim, rotary_dim):
        raise UserError(
            f"maw.depth={maw.depth} is too deep for variant=nested on a head of width {head_dim}{pairs} (widths halve "
            f"per depth); use maw.depth <= {max_nested_depth(head_dim, rotary_dim)}."
        )


def check_sites(maw: MAWConfig, sites: list, mechanism: str = "standard") -> None:
    """``maw`` and the mechanism against interface sites (``modeling/interface.py``): no ``full`` variant (the family
    owns the projections), the depth fits every site's heads, and MAW's chunks and diff's second map only where
    the sites' rotary embedding is one they can follow (``rotary_dim`` -1: refused in one line)."""
    if maw.enabled and maw.variant == "full":
        raise UserError("maw.variant=full gives each depth its own query/key maps, which only a BERT self-attention "
                        "exposes; use maw.variant=nested or split on this model, or maw.placement=append.")
    idx = resolve_layers(maw.layers, len(sites))
    uses_qk = "MAW" if maw.enabled else (f"attention.mechanism={mechanism}" if mechanism == "diff" else None)
    for i in idx:
        if uses_qk and sites[i].rotary_dim < 0:
            raise UserError(f"{uses_qk} splits or extends the query/key heads of {sites[i].name}, whose rotary position "
                            "embedding pairs its columns in a way maw-bench cannot follow (not transformers' "
                            "rotate_half on angles handed to the module); use maw.placement=append, or the gated "
                            "mechanism, which leaves query and key alone.")
        if maw.enabled and sites[i].mask_bias:
            raise UserError(f"MAW computes its own attention scores at {sites[i].name}, whose attention adds a score "
                            "bias to them (relative positions, ALiBi) that MAW would drop; use maw.placement=append, or "
                            "the gated or diff mechanism, which keep it.")
        if maw.enabled:
            check_head_depth(maw, sites[i].head_dim, sites[i].rotary_dim)


def maw_spec(maw: MAWConfig) -> dict:
    """``maw_options`` as JSON (the selection by name, its knobs as a dict): what ``modeling/plug.py`` reads."""
    options = maw_options(maw)
    return {**options, "selection": maw.selection, "params": dataclasses.asdict(options["params"])}


def check_kernel(attn_implementation: str, model_type: str) -> None:
    """Interface arms run transformers' sdpa beside their mechanism; another kernel for the standard arm would make
    the arms differ in more than attention."""
    if attn_implementation not in ("", "sdpa", "maw_bench"):
        raise UserError(f"maw.placement=replace on model type {model_type!r} runs attention through maw-bench's attention "
                        f"function on transformers' sdpa, so model.attn_implementation={attn_implementation} would give "
                        "the arms different kernels; leave it empty or use sdpa (or maw.placement=append).")


def arm_spec(model: nn.Module, maw: MAWConfig, attention) -> dict:
    """The spec :func:`maw_bench.modeling.plug.plug` builds the arm from, made from maw-bench's config: every
    setting checked against the model, layers resolved, interface sites probed (one-line refusals here)."""
    mechanism = attention.mechanism if not maw.enabled and attention.mechanism != "standard" else None
    spec: dict = {"maw": maw_spec(maw) if maw.enabled else None, "maw_layers": [], "mechanism": None,
                  "appended": None, "sites": None}
    layers: list[int] = []
    if maw.placement == "append":
        spec["appended"] = appended_spec(model, maw)
    elif maw.enabled or mechanism:
        from maw_bench.modeling.sites import bert_layers, interface_sites

        found = bert_layers(model)
        if found is not None:
            if maw.enabled:
                check_depth(maw, model.config.hidden_size, model.config.num_attention_heads)
            layers = resolve_layers(maw.layers, len(found))
        else:
            sites = interface_sites(model)
            check_sites(maw, sites, attention.mechanism)
            check_kernel(getattr(model.config, "_attn_implementation", "sdpa") or "sdpa", model.config.model_type)
            spec["sites"] = [dataclasses.asdict(site) for site in sites]
            layers = resolve_layers(maw.layers, len(sites))
        spec["maw_layers"] = layers if maw.enabled else []
    if mechanism:
        from maw_bench.mechanisms import MECHANISMS

        if spec["sites"] is not None and MECHANISMS[mechanism].kernel is None:
            raise UserError(f"attention.mechanism={mechanism} has no kernel for the attention interface this model "
                            "uses (docs/extending.md); use maw.placement=append.")
        spec["mechanism"] = {"name": mechanism, "layers": layers, "placement": maw.placement,
                             "settings": dataclasses.asdict(attention)}
    return spec


def appended_spec(model: nn.Module, maw: MAWConfig) -> dict:
    """``maw.num_blocks`` blocks for the top of the encoder, with the backbone's own eps and attention dropout."""
    cfg = model.config
    heads = maw.num_heads or cfg.num_attention_heads
    if cfg.hidden_size % heads:
        raise UserError(f"maw.num_heads={heads} does not divide the hidden size {cfg.hidden_size}; pick a divisor.")
    if maw.enabled:
        check_depth(maw, cfg.hidden_size, heads)
    return {"num_blocks": maw.num_blocks, "num_heads": heads, "maw": maw.enabled, "dropout": attention_dropout(cfg),
            "eps": norm_eps(cfg)}


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
