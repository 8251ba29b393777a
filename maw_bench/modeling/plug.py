"""One arm on one backbone, from a plain spec: the only place an arm is assembled.

``Encoder`` (maw-bench) and ``MAWEncoderModel`` (the modelling code an export ships) both call :func:`plug`,
so the trained model and its export cannot be built two ways. The spec is JSON (an export writes it into its
``config.json`` as ``arm``); maw-bench makes it from its config (``modeling/layers.py`` ``arm_spec``):

- ``maw``: ``MAWAttention`` options with the selection as its name and its knobs as a dict, or None;
- ``maw_layers``: the layers whose attention MAW takes (``placement: replace``);
- ``mechanism``: ``{"name", "layers", "placement", "settings"}`` (gated, diff or a registered one), or None;
- ``appended``: ``{"num_blocks", "num_heads", "maw", "dropout", "eps"}`` (``placement: append``), or None;
- ``sites``: the attention-interface sites (``modeling/interface.py``) of a family without a BERT
  self-attention, as dicts, or None for a BERT self-attention swapped in place.

Modules are created in the same order as always (so the same seed gives the same weights). Imports only torch
and transformers and maw-bench's shipped modules: shipped with an export as ``model_plug.py``.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch.nn as nn

from maw_bench.maw.hf_layers import AppendedBlock, HFMAWSelfAttention
from maw_bench.maw.selection import SelectionParams, parse_selection
from maw_bench.modeling.interface import Site, use_interface


def maw_kwargs(raw: dict | None) -> dict | None:
    """``MAWAttention`` keyword arguments from the spec's JSON ``maw`` (the strategy parsed once, shared by every
    MAW layer of the arm)."""
    if raw is None:
        return None
    params = SelectionParams(**raw["params"])
    return {**raw, "params": params, "selection": parse_selection(raw["selection"], raw["depth"], params)}


def settings_view(settings: dict) -> SimpleNamespace:
    """A mechanism's settings (maw-bench's ``attention`` section as a dict) with attribute access, as builders read
    them (``cfg.gated.granularity``)."""
    return SimpleNamespace(**{k: settings_view(v) if isinstance(v, dict) else v for k, v in settings.items()})


def builtin_mechanisms() -> dict:
    """name -> (builder for a BERT self-attention, kernel for an interface site) of the shipped mechanisms."""
    from maw_bench.mechanisms.diff import DiffSelfAttention
    from maw_bench.mechanisms.gated import GatedSelfAttention
    from maw_bench.mechanisms.kernels import DiffKernel, GatedKernel

    return {"gated": (lambda original, cfg: GatedSelfAttention(original, cfg.gated.granularity),
                      lambda site, cfg: GatedKernel(site, cfg.gated.granularity)),
            "diff": (lambda original, cfg: DiffSelfAttention(original, cfg.diff.lambda_init),
                     lambda site, cfg: DiffKernel(site, cfg.diff.lambda_init))}


def plug(backbone: nn.Module, spec: dict, mechanisms: dict | None = None) -> nn.ModuleList:
    """Put the arm ``spec`` describes into ``backbone`` (in place) and return its appended blocks (maybe none).
    ``mechanisms``: name -> (builder, kernel); the shipped ones by default."""
    options = maw_kwargs(spec.get("maw"))
    sites = [Site.from_spec(s) for s in spec["sites"]] if spec.get("sites") is not None else None
    if sites is not None:
        use_interface(backbone)
    for i in spec.get("maw_layers") or []:
        if sites is None:
            layer = backbone.encoder.layer[i]
            layer.attention.self = HFMAWSelfAttention(layer.attention.self, options)
        else:
            from maw_bench.mechanisms.kernels import MAWKernel

            MAWKernel(sites[i], options).bind(backbone.get_submodule(sites[i].name))
    app = spec.get("appended")
    blocks = nn.ModuleList(
        AppendedBlock(backbone.config.hidden_size, app["num_heads"], options if app["maw"] else None, app["dropout"],
                      app["eps"]) for _ in range(app["num_blocks"])) if app else nn.ModuleList()
    if spec.get("mechanism"):
        _plug_mechanism(backbone, blocks, sites, spec["mechanism"], mechanisms or builtin_mechanisms())
    return blocks


def _plug_mechanism(backbone: nn.Module, blocks: nn.ModuleList, sites: list[Site] | None, mech: dict,
                    mechanisms: dict) -> None:
    """The mechanism in the appended blocks, at BERT self-attentions, or at interface sites; then frozen if asked."""
    if mech["name"] not in mechanisms:
        raise ValueError(f"unknown attention mechanism {mech['name']!r}: it is not among {sorted(mechanisms)}")
    build, kernel = mechanisms[mech["name"]]
    cfg = settings_view(mech["settings"])
    root: nn.Module = backbone
    if mech.get("placement") == "append":
        from maw_bench.mechanisms.block import BlockMechanism

        for block in blocks:
            block.attn = BlockMechanism(block.attn, lambda original: build(original, cfg))
        root = blocks
    elif sites is None:
        for i in mech["layers"]:
            layer = backbone.encoder.layer[i]
            layer.attention.self = build(layer.attention.self, cfg)
    else:
        if kernel is None:
            raise ValueError(f"attention mechanism {mech['name']!r} has no kernel for the attention interface")
        for i in mech["layers"]:
            kernel(sites[i], cfg).bind(backbone.get_submodule(sites[i].name))
    if getattr(cfg, "freeze_added", False):
        for module in root.modules():
            if hasattr(module, "added_parameters"):
                for p in module.added_parameters():
                    p.requires_grad_(False)
