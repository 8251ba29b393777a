"""Where an attention mechanism can sit in a backbone, decided from the model's own modules before any work.

``maw.placement: replace`` swaps a layer's self-attention for MAW, gated or diff attention. Those modules take a
BERT-style self-attention: ``layer.attention.self`` with ``query``/``key``/``value`` linear maps of the hidden width,
called with the hidden states, returning the context before the output projection. BERT, RoBERTa, XLM-R,
ELECTRA and CamemBERT have it. Other families put attention elsewhere or compute scores that are not
``softmax(QK^T / sqrt(d))``, so they are refused in one line at config check, naming the model type and why,
before any data or training work. ``maw.placement: append`` adds blocks on top of the backbone's output and
works with any ``AutoModel`` (every arm, any family).

The decision is made on the model built from its config on the ``meta`` device (no weights, no memory), by
what its modules are, not by a module path or a list of names; the reasons below only say *why* for families
whose attention is known to differ.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn as nn

from maw_bench.errors import UserError

# model_type -> why its attention cannot take a replaced BERT self-attention (the message; detection is structural)
WHY_NOT: dict[str, str] = {
    "mpnet": "its attention adds a learned relative position bias inside the scores",
    "deberta": "its attention is disentangled (content-to-position and position-to-content scores)",
    "deberta-v2": "its attention is disentangled (content-to-position and position-to-content scores)",
    "albert": "one attention module is shared by every layer, so a replaced layer would change them all",
    "mobilebert": "its attention takes separate query, key and value inputs of bottleneck width",
    "distilbert": "its attention module has no BERT self-attention (q_lin/k_lin/v_lin and out_lin in one module)",
    "modernbert": "its attention fuses query, key and value in one map and applies rotary position embeddings",
    "nomic_bert": "its attention fuses query, key and value in one map and applies rotary position embeddings",
}
SUPPORTED_REPLACE = "BERT, RoBERTa, XLM-R, ELECTRA, CamemBERT"


def bert_self_attention_problem(layer: nn.Module, hidden: int) -> str | None:
    """None if ``layer`` has a BERT self-attention a mechanism can replace; else what is missing."""
    attention = getattr(layer, "attention", None)
    self_attn = getattr(attention, "self", None)
    if not isinstance(self_attn, nn.Module):
        return f"no attention.self in {type(layer).__name__}"
    for name in ("query", "key", "value"):
        lin = getattr(self_attn, name, None)
        if not isinstance(lin, nn.Linear) or lin.in_features != hidden or lin.out_features != hidden:
            return f"{type(self_attn).__name__} has no {name} map of the hidden width {hidden}"
    params = [p for p in inspect.signature(self_attn.forward).parameters if p != "self"]
    if not params or params[0] != "hidden_states":
        return f"{type(self_attn).__name__} is called with {', '.join(params[:3])} rather than the hidden states"
    return None


def replace_layers(model: nn.Module) -> nn.ModuleList:
    """The backbone's layers whose self-attention ``placement: replace`` swaps; a one-line refusal otherwise."""
    config = getattr(model, "config", None)
    kind = getattr(config, "model_type", type(model).__name__)
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    problem = None
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        problem = f"no encoder.layer list in {type(model).__name__}"
    else:
        shared = len({id(getattr(getattr(x, "attention", None), "self", x)) for x in layers}) < len(layers)
        problem = "layers share one attention module" if shared else \
            bert_self_attention_problem(layers[0], getattr(config, "hidden_size", -1))
    if problem:
        why = WHY_NOT.get(kind, problem)
        raise UserError(f"model type {kind!r}: maw.placement=replace needs a BERT self-attention to replace, and "
                        f"{why}; use maw.placement=append (every arm, on top of any encoder) or a {SUPPORTED_REPLACE} "
                        "model.")
    return layers


def check_replace_layout(model_config, trust_remote_code: bool) -> None:
    """Build the model from ``model_config`` on the meta device and check it can take a replaced attention."""
    from transformers import AutoModel

    from maw_bench.modeling.loading import quiet_transformers

    try:
        with quiet_transformers(), torch.device("meta"):
            model = AutoModel.from_config(model_config, trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - a config transformers cannot build says so in one line
        kind = getattr(model_config, "model_type", "?")
        raise UserError(f"cannot build model type {kind!r} from its config to find its attention: "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    replace_layers(model)
