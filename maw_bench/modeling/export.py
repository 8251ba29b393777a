"""Export a trained arm in the sentence-transformers folder layout, so the field's tools load it as it is.

``SentenceTransformer(path)`` (and MTEB, and anything built on it) then gives the
same embeddings as ``load_encoder`` on the maw-bench folder: the HF backbone written
with ``save_pretrained``, ``modules.json`` (Transformer -> Pooling -> Normalize),
``sentence_bert_config.json`` with the published max length, and the pooling config.
A MAW arm (custom attention) or an ``append`` arm needs its modelling code shipped with
it; that export is not built yet and is refused with a one-line error.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from maw_bench.errors import UserError
from maw_bench.modeling.encoder import Encoder

MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]


def exportable(encoder: Encoder) -> str | None:
    """Why this encoder cannot be exported as a plain sentence-transformers folder (None: it can)."""
    if encoder.maw_modules():
        return "a MAW arm needs its attention code shipped with the weights (trust_remote_code), not built yet"
    if len(encoder.blocks):
        return "an append-placement arm has blocks on top of the encoder that sentence-transformers does not know"
    if encoder.model_cfg.query_prefix or encoder.model_cfg.doc_prefix:
        return "query/document prefixes would need sentence-transformers prompts, not written yet"
    return None


def export_sentence_transformers(encoder: Encoder, directory: str | Path) -> Path:
    """Write ``directory`` as a sentence-transformers model folder (atomic: temporary folder, then rename)."""
    why = exportable(encoder)
    if why is not None:
        raise UserError(f"cannot export this arm for sentence-transformers: {why}.")
    final = Path(directory)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    backbone = getattr(encoder.backbone, "base_model", encoder.backbone)
    backbone.save_pretrained(tmp, safe_serialization=True)
    encoder.tokenizer.save_pretrained(tmp)
    (tmp / "modules.json").write_text(json.dumps(MODULES, indent=2))
    (tmp / "sentence_bert_config.json").write_text(json.dumps(
        {"max_seq_length": encoder.published_max_length, "do_lower_case": False}, indent=2))
    (tmp / "1_Pooling").mkdir()
    (tmp / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": encoder.dim,
        "pooling_mode_cls_token": encoder.model_cfg.pooling == "cls",
        "pooling_mode_mean_tokens": encoder.model_cfg.pooling == "mean",
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}, indent=2))
    (tmp / "2_Normalize").mkdir()
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    return final
