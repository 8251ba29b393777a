"""Mechanisms through transformers' attention interface: how a replaced attention reaches any family.

transformers 5 computes a layer's query, key and value heads in the family's own module (fused maps, rotary
embeddings, q/k norms, grouped key/value heads: all family business) and then calls
``ALL_ATTENTION_FUNCTIONS[config._attn_implementation](module, q, k, v, mask, dropout=, scaling=, ...)``. That
call is where a mechanism changes attention, for every family that makes it (BERT, RoBERTa, DistilBERT,
MobileBERT, ModernBERT, Qwen3, Llama, Gemma ...). maw-bench registers one implementation, ``maw_bench``: it
runs the mechanism a module carries (its child ``maw_mechanism``) and, for every other module, transformers'
own ``sdpa`` function with the same arguments, so a layer without a mechanism computes what it computed
before. Masks are sdpa's (``AttentionMaskInterface`` gets the same name for ``sdpa_mask``); a mechanism turns
a skipped mask (None) back into the causal or full mask the module implies.

The sites are found by what the model does: :func:`probe_sites` runs the model's own forward, built from its
config on the ``meta`` device (no weights, no arithmetic), and records every module that calls the interface,
in call order, with its head shapes, scaling, input width and how many head columns its rotary embedding turns.

The layer input a mechanism needs besides the heads (the router's state, the gate's input, the second map's)
is held by :class:`LayerInput`: a forward pre-hook pushes it for the duration of the module's forward and a
forward hook (``always_call``) pops it, so it is re-entrant and no state is left on a module after a forward.

Imports only torch and transformers: shipped with an export.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass

import torch
import torch.nn as nn

IMPLEMENTATION = "maw_bench"
MECHANISM_ATTR = "maw_mechanism"  # the child module of an attention module that holds its mechanism
_PROBE = "maw_bench_probe"


def sdpa_forward():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward


def dispatch(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
             attention_mask: torch.Tensor | None, **kwargs):
    """The ``maw_bench`` attention function: the module's mechanism, else transformers' sdpa (unchanged)."""
    mechanism = module._modules.get(MECHANISM_ATTR)
    if mechanism is None:
        return sdpa_forward()(module, query, key, value, attention_mask, **kwargs)
    return mechanism.attend(module, query, key, value, attention_mask, **kwargs)


def register() -> None:
    """Make ``maw_bench`` a valid ``attn_implementation`` (attention and mask interfaces); idempotent."""
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    from transformers.modeling_utils import AttentionInterface

    AttentionInterface.register(IMPLEMENTATION, dispatch)
    AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)


def use_interface(model: nn.Module) -> None:
    """Route ``model``'s attention through ``maw_bench``."""
    register()
    model.set_attn_implementation(IMPLEMENTATION)


def full_mask(module: nn.Module, mask: torch.Tensor | None, query: torch.Tensor, key: torch.Tensor,
              is_causal: bool | None = None):
    """A bool mask ``(B, 1, Lq, Lk)`` or None: sdpa's mask, or, where sdpa's mask was skipped, the causal one by
    sdpa's own rule (the call's ``is_causal``, else the module's, else causal), or a float mask of 0 and the
    dtype's minimum turned into bool."""
    if mask is not None:
        if mask.dtype == torch.bool:
            return mask
        allowed = mask > torch.finfo(mask.dtype).min / 2
        if bool((allowed & (mask != 0)).any()):  # a bias inside the mask (ALiBi, T5's positions): not droppable
            raise RuntimeError(f"{type(module).__name__} hands the attention function a mask that carries a score "
                               "bias, which a mechanism's own scores would drop; use maw.placement=append")
        return allowed
    lq, lk = query.shape[-2], key.shape[-2]
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    if causal and lq > 1:
        return torch.ones(lq, lk, dtype=torch.bool, device=query.device).tril(lk - lq)[None, None]
    return None


def repeat_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """Grouped key/value heads ``(B, H_kv, L, d)`` repeated to ``heads`` as transformers' ``repeat_kv`` does."""
    return t if t.shape[1] == heads else t.repeat_interleave(heads // t.shape[1], dim=1)


def rotate(t: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """transformers' rotary embedding (``rotate_half`` convention) of heads ``(B, H, L, d)``: the first
    ``cos.shape[-1]`` columns turn (partial rotary: StableLM, Phi, GPT-NeoX), the rest pass; identity without."""
    if rope is None:
        return t
    cos, sin = (r.unsqueeze(1).to(t.dtype) for r in rope)
    width = cos.shape[-1]
    turned, passed = t[..., :width], t[..., width:]
    half = width // 2
    out = turned * cos + torch.cat((-turned[..., half:], turned[..., :half]), dim=-1) * sin
    return out if passed.shape[-1] == 0 else torch.cat((out, passed), dim=-1)


def rotary_columns(module: nn.Module, rope) -> int:
    """How many of the head's first columns ``module``'s rotary embedding turns, in ``rotate_half`` pairs
    ``(i, i + r/2)``: 0 without rotary; -1 for rotary a mechanism cannot follow: another pairing (Cohere, GLM,
    GPT-J turn neighbouring columns), or angles applied inside the module rather than handed to it (ESM)."""
    if rope is None:
        inside = any("rotary" in type(m).__name__.lower() for m in module.modules())
        return -1 if inside else 0
    if not (isinstance(rope, (tuple, list)) and len(rope) == 2):
        return -1  # position input of another kind: not angles a mechanism knows how to apply
    width = int(rope[0].shape[-1])
    return width if rotates_half(type(module)) else -1


def rotates_half(cls: type) -> bool:
    """True if the family of attention class ``cls`` turns column ``i`` with ``i + r/2``: its own ``rotate_half``,
    tried on a vector (what the family does, not what it is called)."""
    import sys

    fn = getattr(sys.modules.get(cls.__module__), "rotate_half", None)
    if not callable(fn):
        return False
    x = torch.arange(1.0, 9.0, device="cpu")
    try:
        return bool(torch.equal(fn(x), torch.cat((-x[4:], x[:4]))))
    except Exception:  # noqa: BLE001 - a rotate_half that does not take a vector is not the convention we know
        return False


class LayerInput:
    """The input of one attention module (its hidden states, and its rotary ``(cos, sin)`` if it gets them), held
    for the duration of that module's forward only: pushed by a pre-hook, popped by an ``always_call`` hook."""

    def __init__(self, module: nn.Module) -> None:
        self._stack: list[tuple[torch.Tensor, tuple | None]] = []
        self._signature = inspect.signature(module.forward)
        module.register_forward_pre_hook(self._push, with_kwargs=True)
        module.register_forward_hook(self._pop, always_call=True)

    def _push(self, _module, args, kwargs) -> None:
        bound = self._signature.bind_partial(*args, **kwargs).arguments
        values = list(bound.values())
        hidden = bound.get("hidden_states", values[0] if values else None)
        rope = bound.get("position_embeddings")
        self._stack.append((hidden, tuple(rope) if isinstance(rope, (tuple, list)) else None))

    def _pop(self, *_args) -> None:
        self._stack.pop()

    def current(self) -> tuple[torch.Tensor, tuple | None]:
        if not self._stack:
            raise RuntimeError("a mechanism's attention ran outside its module's forward (no layer input held)")
        return self._stack[-1]

    @property
    def held(self) -> int:
        return len(self._stack)


@dataclass(frozen=True)
class Site:
    """One module that calls the attention interface, as the probe saw it."""

    name: str  # its path in the model
    num_heads: int
    num_kv_heads: int
    head_dim: int
    input_width: int  # the width of the hidden states it is called with (the router's and gate's input)
    scaling: float
    rotary_dim: int  # head columns its rotary embedding turns in rotate_half pairs (0: none; -1: rotary we cannot follow)
    mask_bias: bool = False  # a score bias comes with its call (T5's position_bias, or a float mask: ALiBi)

    @classmethod
    def from_spec(cls, raw: dict) -> Site:
        """A site from its JSON (an arm spec); a spec written before ``rotary_dim`` said ``rotary: bool``."""
        raw = dict(raw)
        if "rotary" in raw:
            raw["rotary_dim"] = raw["head_dim"] if raw.pop("rotary") else 0
        return cls(**raw)


def probe_sites(model: nn.Module) -> list[Site]:
    """Every call of the attention interface in one forward of ``model``'s architecture, in order (the model is
    rebuilt from its config on the meta device). Empty if the family does not use the interface."""
    with torch.device("meta"):
        twin = type(model)(copy.deepcopy(model.config))  # the class at hand: remote code needs no new trust
    return probe_model(twin)


def probe_model(twin: nn.Module) -> list[Site]:
    """:func:`probe_sites` on a model already on the meta device."""
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    from transformers.modeling_utils import AttentionInterface

    return _run_probe(twin, AttentionInterface, AttentionMaskInterface, sdpa_mask)


def _run_probe(twin: nn.Module, attention_interface, mask_interface, sdpa_mask) -> list[Site]:
    names = {id(m): n for n, m in twin.named_modules()}
    seen: list[Site] = []
    inputs: dict[int, tuple] = {}

    def record(module, query, key, value, attention_mask, scaling=None, **kwargs):
        hidden, rope = inputs.get(id(module), (None, None))
        seen.append(Site(names.get(id(module), "?"), query.shape[1], key.shape[1], query.shape[-1],
                         int(hidden.shape[-1]) if hidden is not None else -1,
                         float(scaling if scaling is not None else query.shape[-1] ** -0.5),
                         rotary_columns(module, rope),
                         kwargs.get("position_bias") is not None
                         or (attention_mask is not None and attention_mask.dtype != torch.bool)))
        return sdpa_forward()(module, query, key, value, attention_mask, scaling=scaling, **kwargs)

    holders = [_Recorder(m, inputs) for m in twin.modules()]  # whichever turns out to call the interface
    attention_interface.register(_PROBE, record)
    def materialised(*args, **kwargs):  # sdpa's mask without its skips: they read values, which meta has none of
        kwargs.update(allow_is_causal_skip=False, allow_is_bidirectional_skip=False)
        return sdpa_mask(*args, **kwargs)

    mask_interface.register(_PROBE, materialised)
    try:
        twin.set_attn_implementation(_PROBE)
        if twin.config._attn_implementation != _PROBE:
            return []
        ids = torch.ones(1, 4, dtype=torch.long, device="meta")
        with torch.no_grad():
            twin(input_ids=ids, attention_mask=torch.ones_like(ids))
    except Exception:  # noqa: BLE001 - a forward that does not run on meta tells nothing about the interface
        if not seen:
            return []
        raise
    finally:
        attention_interface._global_mapping.pop(_PROBE, None)
        mask_interface._global_mapping.pop(_PROBE, None)
        for h in holders:
            h.remove()
    return seen


class _Recorder:
    """The probe's view of a module's input (width and rotary embeddings), by a pre-hook."""

    def __init__(self, module: nn.Module, inputs: dict) -> None:
        signature = inspect.signature(module.forward)

        def hook(_m, args, kwargs):
            bound = signature.bind_partial(*args, **kwargs).arguments
            values = list(bound.values())
            inputs[id(module)] = (bound.get("hidden_states", values[0] if values else None),
                                  bound.get("position_embeddings"))

        self._handle = module.register_forward_pre_hook(hook, with_kwargs=True)

    def remove(self) -> None:
        self._handle.remove()
