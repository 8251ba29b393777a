"""Attention mechanisms other than MAW, as a registry: each one module, a drop-in for a BERT self-attention.

A mechanism is a name, a builder that wraps one pretrained self-attention module (and
starts exactly at it), and a help line. ``attention.mechanism`` names one; ``maw.layers``
says where it replaces the pretrained attention (``placement: replace``), so every arm
of a study changes the same layers; with ``placement: append`` it wraps the attention of
each appended block the standard arm has (``mechanisms/block.py``), through the same builder. MAW itself keeps its own code under ``maw/`` and
its switch ``maw.enabled``; the registry sits beside it. Adding a mechanism is one module
plus :func:`register` (docs/extending.md).

Every builder returns a module whose ``added_parameters()`` are the weights it adds to the
pretrained layer: they count in ``params_added``, learn at ``train.router_lr`` (like MAW's
routers) and are frozen by ``attention.freeze_added``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn

from maw_bench.mechanisms.diff import DiffSelfAttention
from maw_bench.mechanisms.gated import GatedSelfAttention


@dataclass(frozen=True)
class Mechanism:
    name: str
    build: Callable[[nn.Module, object], nn.Module]  # (pretrained self-attention, AttentionConfig) -> drop-in
    help: str
    # (interface Site, AttentionConfig) -> a kernel for families without a BERT self-attention (mechanisms/kernels.py)
    kernel: Callable[[object, object], nn.Module] | None = None


MECHANISMS: dict[str, Mechanism] = {}


def register(mechanism: Mechanism) -> Mechanism:
    MECHANISMS[mechanism.name] = mechanism
    return mechanism


def _gated_kernel(site, cfg) -> nn.Module:
    from maw_bench.mechanisms.kernels import GatedKernel

    return GatedKernel(site, cfg.gated.granularity)


def _diff_kernel(site, cfg) -> nn.Module:
    from maw_bench.mechanisms.kernels import DiffKernel

    return DiffKernel(site, cfg.diff.lambda_init)


register(Mechanism("gated", lambda original, cfg: GatedSelfAttention(original, cfg.gated.granularity),
                   "a per-head sigmoid gate on the attention output, 1 at init (Qiu et al. 2025)", _gated_kernel))
register(Mechanism("diff", lambda original, cfg: DiffSelfAttention(original, cfg.diff.lambda_init),
                   "the pretrained map minus lambda x a second map, lambda 0 at init (Ye et al. 2025; DEX)",
                   _diff_kernel))


def mechanism_names() -> list[str]:
    return ["standard", *MECHANISMS]


def added_modules(model: nn.Module) -> list[nn.Module]:
    """The mechanism modules inside ``model`` (those that declare ``added_parameters``)."""
    return [m for m in model.modules() if hasattr(m, "added_parameters")]


def mechanism_table() -> dict:
    """name -> (builder, kernel) of every registered mechanism, as ``modeling/plug.py`` takes them."""
    return {m.name: (m.build, m.kernel) for m in MECHANISMS.values()}
