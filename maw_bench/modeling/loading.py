"""Load a HuggingFace backbone and tokenizer quietly, with one-line errors."""

from __future__ import annotations

import contextlib

import torch.nn as nn

from maw_bench.errors import UserError


@contextlib.contextmanager
def quiet_transformers():
    """Hide transformers' load report and progress bars (the unused pooler is expected)."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:  # as it was: off stays off in a log file (runtime/progress.py: quiet_third_party_bars)
            hf_logging.enable_progress_bar()


def load_backbone(source: str, trust_remote_code: bool, from_config: bool, revision: str = "",
                  attn_implementation: str = "", weights_dtype: str = "float32") -> nn.Module:
    """``AutoModel`` of ``source`` without a pooler (``from_config``: its architecture, random weights);
    ``revision`` and ``attn_implementation`` go to transformers as given ('' = its default), and the weights load
    in ``weights_dtype`` (``auto``: the checkpoint's own; transformers 5 loads a bf16 checkpoint as bf16)."""
    with quiet_transformers():
        model = _load_backbone(source, trust_remote_code, from_config,
                               {**hub_options(revision, attn_implementation),
                                **({} if from_config else {"dtype": torch_dtype(weights_dtype)})})
    check_encodes_alone(model.config, source)
    return model if weights_dtype == "auto" else model.to(torch_dtype(weights_dtype))


def check_encodes_alone(model_config, name: str) -> None:
    """An encoder-decoder's ``AutoModel`` (T5, BART) needs decoder inputs to run; maw-bench encodes a text with one
    stack, so it says so before any work instead of failing at the first batch."""
    if getattr(model_config, "is_encoder_decoder", False):
        raise UserError(f"model {name} (type {getattr(model_config, 'model_type', '?')!r}) is an encoder-decoder, whose "
                        "AutoModel needs decoder inputs; maw-bench encodes with an encoder-only or decoder-only model "
                        "(BERT-like encoders, ModernBERT, decoder embedders such as Qwen3-Embedding).")


def torch_dtype(name: str):
    """``model.weights_dtype`` as from_pretrained takes it ('auto', or a torch dtype)."""
    import torch

    return "auto" if name == "auto" else getattr(torch, name)


def hub_options(revision: str = "", attn_implementation: str = "") -> dict:
    """The from_pretrained keywords ``model.revision`` and ``model.attn_implementation`` stand for."""
    return {**({"revision": revision} if revision else {}),
            **({"attn_implementation": attn_implementation} if attn_implementation else {})}


def _load_backbone(source: str, trust_remote_code: bool, from_config: bool, options: dict) -> nn.Module:
    from transformers import AutoConfig, AutoModel

    kwargs = {"trust_remote_code": trust_remote_code, **options}
    try:
        if from_config:
            config = AutoConfig.from_pretrained(source, **{k: v for k, v in kwargs.items() if k != "attn_implementation"})
            built = {k: v for k, v in kwargs.items() if k != "revision"}
            try:
                return AutoModel.from_config(config, add_pooling_layer=False, **built)
            except TypeError:
                return AutoModel.from_config(config, **built)
        try:
            return AutoModel.from_pretrained(source, add_pooling_layer=False, **kwargs)
        except TypeError:
            return AutoModel.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot load model {source}: {first}") from exc


def load_tokenizer(source: str, trust_remote_code: bool, revision: str = ""):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code, **hub_options(revision))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load the tokenizer of {source}: {str(exc).splitlines()[0]}") from exc


def published_max_length(source: str, tokenizer, positions: int | None = None) -> int:
    """The length a model was published to encode with, as sentence-transformers and MTEB use it.

    Its ``sentence_bert_config.json`` ``max_seq_length`` where there is one (256 for
    all-MiniLM-L6-v2), else the tokenizer's ``model_max_length`` capped at 512 and at
    the model's position embeddings (``positions``).
    """
    from maw_bench.modeling.st_recipe import read_model_json

    config = read_model_json(source, "sentence_bert_config.json")
    value = config.get("max_seq_length") if isinstance(config, dict) else None
    if isinstance(value, int) and value > 0:
        return value
    limit = getattr(tokenizer, "model_max_length", 512) or 512
    return int(min(limit, 512, positions or 512))
