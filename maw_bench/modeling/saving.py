"""Save and load an :class:`Encoder` exactly: config + tokenizer + safetensors, written atomically."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from maw_bench.config import AttentionConfig, MAWConfig, ModelConfig, _build
from maw_bench.errors import UserError
from maw_bench.modeling.encoder import Encoder
from maw_bench.modeling.loading import load_backbone, load_tokenizer, published_max_length
from maw_bench.modeling.st_recipe import as_saved

META_FILE = "maw_bench.json"
WEIGHTS_FILE = "model.safetensors"
# weights of older versions that no longer exist (the routers' unused value heads)
_RETIRED = (".router.value.",)


def save_encoder(encoder: Encoder, directory: str | Path) -> Path:
    """Write config, tokenizer and safetensors weights; atomic (temp folder, then rename)."""
    final = Path(directory)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    meta = {"format": 1, "model": dataclasses.asdict(encoder.model_cfg), "maw": dataclasses.asdict(encoder.maw_cfg),
            "attention": dataclasses.asdict(encoder.attention_cfg), "published_max_length": encoder.published_max_length}
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
    encoder.backbone.config.save_pretrained(tmp)
    encoder.tokenizer.save_pretrained(tmp)
    state = {k: v.detach().contiguous().cpu() for k, v in encoder.state_dict().items()}
    save_file(state, str(tmp / WEIGHTS_FILE))
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)
    return final


def load_encoder(directory: str | Path, device: str | torch.device | None = None) -> Encoder:
    """Load what :func:`save_encoder` wrote, exactly."""
    path = Path(directory)
    meta_file = path / META_FILE
    if not meta_file.is_file():
        raise UserError(f"{path} is not a saved maw-bench encoder (no {META_FILE}); pass a folder written by `train`.")
    from maw_bench.runtime.atomic import read_json_file

    meta = read_json_file(meta_file, "the saved encoder is damaged: retrain that arm (--overwrite) or restore the folder")
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict) or not isinstance(meta.get("maw"), dict):
        raise UserError(f"{meta_file} is not what maw-bench writes (model and maw settings); restore the folder.")
    model_cfg = as_saved(_build(ModelConfig, meta["model"], "model."))
    maw_cfg = _build(MAWConfig, meta["maw"], "maw.")
    backbone = load_backbone(str(path), model_cfg.trust_remote_code, from_config=True,
                             attn_implementation=model_cfg.attn_implementation)
    tokenizer = load_tokenizer(str(path), model_cfg.trust_remote_code)
    attention_cfg = _build(AttentionConfig, meta.get("attention") or {}, "attention.")  # older folders: standard
    enc = Encoder(backbone, tokenizer, model_cfg, maw_cfg, attention_cfg)
    enc.published_max_length = int(meta.get("published_max_length") or _base_published_length(
        model_cfg.name, str(path), tokenizer, getattr(backbone.config, "max_position_embeddings", None)))
    try:
        weights = load_file(str(path / WEIGHTS_FILE))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type for a damaged header
        raise UserError(f"{path / WEIGHTS_FILE} does not load as safetensors ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                        "the weights are damaged: retrain that arm (--overwrite) or restore the folder.") from None
    state = {k: v for k, v in weights.items() if not any(r in f".{k}" for r in _RETIRED)}
    dtypes = {v.dtype for v in state.values() if v.is_floating_point()}
    if len(dtypes) == 1:  # the weights in the dtype they were trained in (model.weights_dtype; auto: the checkpoint's)
        enc = enc.to(dtypes.pop())
    try:
        enc.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UserError(f"{path / WEIGHTS_FILE} does not fit the model its {META_FILE} describes "
                        f"({str(exc).splitlines()[0]}); restore the folder or retrain that arm.") from None
    return enc.to(device) if device is not None else enc


def _base_published_length(base: str, path: str, tokenizer, positions: int | None) -> int:
    """For folders saved before the published length was recorded: the base model's (where it can be
    resolved: 256 for all-MiniLM-L6-v2), else what the saved folder's own files say."""
    from maw_bench.modeling.resolve import resolve_model

    try:
        return published_max_length(resolve_model(base), tokenizer, positions)
    except UserError:
        return published_max_length(path, tokenizer, positions)


def is_saved_encoder(path: str | Path) -> bool:
    return (Path(path) / META_FILE).is_file()
