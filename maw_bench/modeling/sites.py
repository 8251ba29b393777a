"""Where an attention mechanism can sit in a backbone, decided from the model's own modules before any work.

``maw.placement: replace`` changes the attention of ``maw.layers``. Two ways in:

- a BERT self-attention (``layer.attention.self`` with ``query``/``key``/``value`` maps of the hidden width,
  called with the hidden states, running BERT's own code: :func:`runs_bert_code`): BERT, RoBERTa, XLM-R,
  ELECTRA, CamemBERT, Data2Vec-text, ERNIE. The module is replaced by MAW, gated
  or diff attention (``maw/hf_layers.py``, ``mechanisms/``), as since the first study, whose numbers this keeps;
- any other family whose attention calls transformers' attention interface (DistilBERT, MobileBERT, ModernBERT,
  Qwen3, Llama ...): the module stays, and its call of the interface runs the mechanism
  (``modeling/interface.py``, ``mechanisms/kernels.py``).

Anything else is refused in one line at config check, naming the model type and why, before any data or
training work: attention that does not call the interface (MPNet's position bias, DeBERTa's disentangled
scores) or one attention module shared by several layers (ALBERT). ``maw.placement: append`` adds blocks on top
of the backbone's output and works with any ``AutoModel``.

The decision is made on the model built from its config on the ``meta`` device (no weights, no memory), by
what its modules are and what its forward calls, not by a module path or a list of names; the reasons below
only say *why* for families whose attention is known to differ.
"""

from __future__ import annotations

import functools
import inspect

import torch
import torch.nn as nn

from maw_bench.errors import UserError

# model_type -> why its attention cannot take a mechanism (the message; detection is by the modules and the probe)
WHY_NOT: dict[str, str] = {
    "mpnet": "its attention adds a learned relative position bias inside the scores, outside the attention interface",
    "deberta": "its attention is disentangled (content-to-position and position-to-content scores), outside the "
               "attention interface",
    "deberta-v2": "its attention is disentangled (content-to-position and position-to-content scores), outside the "
                  "attention interface",
    "albert": "one attention module is shared by every layer, so a changed layer would change them all",
}


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
    if not runs_bert_code(type(self_attn)):
        return f"{type(self_attn).__name__} does not run BERT's self-attention code"
    return None


@functools.cache
def runs_bert_code(cls: type) -> bool:
    """True if ``cls``'s ``__init__`` and ``forward`` are BERT's self-attention token for token (comments and the
    class-name prefix aside): transformers' copies for RoBERTa, XLM-R, ELECTRA, CamemBERT, Data2Vec-text, ERNIE ...
    The replacing modules (``maw/hf_layers.py``, ``mechanisms/``) reimplement exactly that code, so a look-alike
    with rotary embeddings (ESM, RoFormer), sparse or local attention (BigBird, Longformer), an approximation
    (Nystromformer) or its own arithmetic (MegatronBERT, RemBERT) must not be swapped for it."""
    from transformers.models.bert.modeling_bert import BertSelfAttention

    prefix = cls.__name__.removesuffix("SelfAttention")
    try:
        return all(_code_tokens(cls, name, prefix) == _code_tokens(BertSelfAttention, name, "Bert")
                   for name in ("__init__", "forward"))
    except (OSError, TypeError):  # no source to read (a class built at run time): not known to be BERT's
        return False


def _code_tokens(cls: type, name: str, prefix: str) -> list[str]:
    import io
    import tokenize

    source = inspect.getsource(inspect.unwrap(getattr(cls, name)))
    skip = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
    return [t.string.replace(prefix, "Bert") if prefix else t.string
            for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in skip]


def bert_layers(model: nn.Module) -> nn.ModuleList | None:
    """The layers of a BERT self-attention layout whose attention modules are distinct, else None."""
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        return None
    if len({id(getattr(getattr(x, "attention", None), "self", x)) for x in layers}) < len(layers):
        return None
    return layers if bert_self_attention_problem(layers[0], getattr(model.config, "hidden_size", -1)) is None else None


def replace_layers(model: nn.Module) -> nn.ModuleList:
    """The BERT-layout layers whose self-attention a mechanism replaces; a one-line refusal otherwise."""
    layers = bert_layers(model)
    if layers is None:
        refuse(model, "it has no BERT self-attention to replace")
    return layers


def interface_sites(model: nn.Module, on_meta: bool = False) -> list:
    """The attention-interface sites of ``model`` in layer order (``modeling/interface.py``); a one-line refusal
    when there are none or one module serves several layers. ``on_meta``: ``model`` is already a meta twin."""
    from maw_bench.modeling.interface import probe_model, probe_sites

    if getattr(model, "_supports_sdpa", True) is False:
        refuse(model, "transformers does not run its attention on sdpa (a term sdpa lacks: softcapping, attention "
                      "sinks ...), which the arms run on")
    try:
        sites = probe_model(model) if on_meta else probe_sites(model)
    except Exception as exc:  # noqa: BLE001 - the probe's own failure, named
        refuse(model, f"its forward could not be followed on the meta device ({type(exc).__name__}: "
                      f"{str(exc).splitlines()[0] if str(exc) else ''})")
    if not sites:
        refuse(model, "its attention does not call transformers' attention interface")
    if len({s.name for s in sites}) < len(sites):
        refuse(model, "one attention module is shared by several layers, so a changed layer would change them all")
    return sites


def refuse(model: nn.Module, problem: str):
    config = getattr(model, "config", None)
    kind = getattr(config, "model_type", type(model).__name__)
    why = WHY_NOT.get(kind, problem)
    raise UserError(f"model type {kind!r}: maw.placement=replace needs attention that calls transformers' attention "
                    f"interface (or a BERT self-attention), and {why}; use maw.placement=append (every arm, on top of "
                    "any encoder).")


def meta_model(model_config, trust_remote_code: bool) -> nn.Module:
    """The model ``model_config`` describes, built on the meta device (no weights, no memory): what config checks
    look at before any data or training work. A config transformers cannot build is one line."""
    from transformers import AutoModel

    from maw_bench.modeling.loading import quiet_transformers

    try:
        with quiet_transformers(), torch.device("meta"):
            return AutoModel.from_config(model_config, trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - a config transformers cannot build says so in one line
        kind = getattr(model_config, "model_type", "?")
        raise UserError(f"cannot build model type {kind!r} from its config to check it: "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc


def check_lora_targets(backbone: nn.Module, targets: list[str]) -> None:
    """Every ``train.lora.target_modules`` name is a module of ``backbone`` (the default names BERT's maps; Llama
    and Qwen call theirs q_proj ...); else one line listing the linear maps LoRA could wrap in this family."""
    names = {name.rsplit(".", 1)[-1] for name, _ in backbone.named_modules()}
    missing = [t for t in targets if t not in names]
    if missing or not targets:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in backbone.named_modules() if isinstance(m, nn.Linear)})
        raise UserError(f"train.lora.target_modules: {', '.join(missing) or '[]'} names no module of this model; its "
                        f"linear maps are {', '.join(linear)} (e.g. --set 'train.lora.target_modules=[{','.join(linear[:2])}]').")


def check_replace_layout(model: nn.Module) -> list | None:
    """Check a mechanism can sit in the attention of ``model`` (a :func:`meta_model`): None for a BERT
    self-attention layout, else its interface sites (refused in one line if it has none)."""
    from maw_bench.modeling.loading import quiet_transformers

    if bert_layers(model) is not None:
        return None
    with quiet_transformers():
        return interface_sites(model, on_meta=True)
