"""The dense encoder: a HuggingFace ``AutoModel`` with MAW plugged in, pooling and ``encode``.

``build_encoder(cfg)`` makes either arm from one config (``maw.enabled``);
``Encoder.save(dir)`` / ``load_encoder(dir)`` round-trip it exactly (config +
safetensors + tokenizer).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from maw_bench.config import BenchmarkConfig, MAWConfig, ModelConfig, _build
from maw_bench.errors import UserError
from maw_bench.maw import MAWAttention, RouteRecord
from maw_bench.modeling.layers import build_appended, encoder_layers, replace_attention
from maw_bench.modeling.resolve import resolve_model

META_FILE = "maw_bench.json"
WEIGHTS_FILE = "model.safetensors"


def autocast_context(device: torch.device, dtype: str):
    """bf16/fp16 autocast where the device supports it; fp32 is a no-op context."""
    if dtype == "fp32":
        return contextlib.nullcontext()
    if dtype == "fp16" and device.type != "cuda":
        raise UserError("dtype fp16 needs a CUDA device; use bf16 or fp32 on the CPU.")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if dtype == "bf16" else torch.float16)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """Mean over real tokens (an all-padding row gives zeros, not NaN) or the first token."""
    if how == "cls":
        return hidden[:, 0]
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


class Encoder(nn.Module):
    """A bi-encoder for queries and documents (shared weights).

    ``forward(input_ids, attention_mask)`` returns L2-normalised embeddings;
    ``encode(texts)`` batches, sorts by length and runs under ``inference_mode``.
    """

    def __init__(self, backbone: nn.Module, tokenizer, model_cfg: ModelConfig, maw_cfg: MAWConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.model_cfg = model_cfg
        self.maw_cfg = maw_cfg
        self.maw_layers: list[int] = []
        self.sample_routes: list[list[RouteRecord]] = []
        self.blocks = nn.ModuleList()
        if maw_cfg.placement == "append":
            self.blocks = build_appended(backbone, maw_cfg, maw_cfg.enabled)
        elif maw_cfg.enabled:
            self.maw_layers = replace_attention(backbone, maw_cfg)

    # ---------------------------------------------------------------- structure
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dim(self) -> int:
        return self.backbone.config.hidden_size

    def maw_modules(self) -> list[MAWAttention]:
        return [m for m in self.modules() if isinstance(m, MAWAttention)]

    def routes(self) -> list[RouteRecord]:
        """The route records of the last forward, one per MAW layer (bottom to top)."""
        return [m.last_route for m in self.maw_modules() if m.last_route is not None]

    # ------------------------------------------------------------------ tokens
    def tokenize(self, texts: Sequence[str], kind: str = "doc", max_length: int | None = None) -> dict[str, torch.Tensor]:
        prefix = self.model_cfg.query_prefix if kind == "query" else self.model_cfg.doc_prefix
        limit = max_length or (self.model_cfg.query_max_length if kind == "query" else self.model_cfg.max_length)
        batch = self.tokenizer(
            [prefix + t for t in texts], padding=True, truncation=True, max_length=limit, return_tensors="pt"
        )
        return {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

    # ----------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        samples: int = 0,
    ) -> torch.Tensor:
        """Embeddings ``(B, dim)``; with ``samples=G``, ``(G, B, dim)`` from :meth:`forward_samples`.

        The ``samples`` path goes through ``forward`` so a DDP wrapper sees every pass;
        the route records of sample ``g`` are in ``self.sample_routes[g]``.
        """
        if samples:
            feats = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                feats["token_type_ids"] = token_type_ids
            out = self.forward_samples(feats, samples)
            self.sample_routes = [routes for _, routes in out]
            return torch.stack([emb for emb, _ in out])
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        return self._head(hidden, attention_mask)

    def _head(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if len(self.blocks):
            mask = attention_mask.bool()[:, None, None, :]
            for blk in self.blocks:
                hidden = blk(hidden, mask)
        return F.normalize(pool(hidden, attention_mask, self.model_cfg.pooling).float(), dim=-1)

    def forward_samples(self, features: dict[str, torch.Tensor], n: int) -> list[tuple[torch.Tensor, list[RouteRecord]]]:
        """``n`` forwards that differ only in the MAW layers' sampled choices.

        Everything below the lowest MAW layer runs once; each further sample re-runs
        only the MAW layers and what lies above them (GRPO's group, cheaply).
        Returns, per sample, the embeddings and that sample's route records.
        (Stacking the samples into one batch was measured slower on CPU: 1.99x against
        1.67x a standard step for a group of 4, see README.)
        """
        mask = features["attention_mask"]
        if self.maw_cfg.placement == "append" or not self.maw_layers:
            kwargs = {k: v for k, v in features.items() if k != "input_ids"}
            hidden = self.backbone(input_ids=features["input_ids"], **kwargs).last_hidden_state
            return [(self._head(hidden, mask), self.routes()) for _ in range(n)]
        layers = encoder_layers(self.backbone)
        start = self.maw_layers[0]
        captured: dict = {}

        def grab(_module, args, kwargs):
            captured["args"], captured["kwargs"] = args, kwargs

        handle = layers[start].register_forward_pre_hook(grab, with_kwargs=True)
        try:
            out = [(self.forward(**features), self.routes())]  # the plain path (samples=0)
        finally:
            handle.remove()
        args, kwargs = captured["args"], captured["kwargs"]
        for _ in range(n - 1):
            h = args[0]
            for layer in layers[start:]:
                h = layer(h, *args[1:], **kwargs)
                h = h[0] if isinstance(h, tuple) else h
            out.append((self._head(h, mask), self.routes()))
        return out

    # ------------------------------------------------------------------ encode
    def encode_batches(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        kind: str = "doc",
        max_length: int | None = None,
        dtype: str = "fp32",
    ) -> Iterator[tuple[list[int], torch.Tensor]]:
        """Yield ``(positions, embeddings)`` batch by batch, longest texts first."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        was_training = self.training
        self.eval()
        device = self.device
        try:
            with torch.inference_mode(), autocast_context(device, dtype):
                for start in range(0, len(order), batch_size):
                    pos = order[start : start + batch_size]
                    feats = self.tokenize([texts[i] for i in pos], kind, max_length)
                    emb = self(**{k: v.to(device) for k, v in feats.items()})
                    yield pos, emb.float().cpu()
        finally:
            self.train(was_training)

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        kind: str = "doc",
        max_length: int | None = None,
        dtype: str = "fp32",
    ) -> torch.Tensor:
        """Unit vectors ``(N, dim)``, float32, in the order of ``texts``."""
        out = torch.empty(len(texts), self.dim)
        for pos, emb in self.encode_batches(texts, batch_size, kind, max_length, dtype):
            out[pos] = emb
        return out

    # -------------------------------------------------------------- save/load
    def save(self, directory: str | Path) -> Path:
        """Write config, tokenizer and safetensors weights; atomic (temp folder, then rename)."""
        final = Path(directory)
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        meta = {"format": 1, "model": dataclasses.asdict(self.model_cfg), "maw": dataclasses.asdict(self.maw_cfg)}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
        self.backbone.config.save_pretrained(tmp)
        self.tokenizer.save_pretrained(tmp)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE))
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
        return final


@contextlib.contextmanager
def _quiet_transformers():
    """Hide transformers' load report and progress bars (the unused pooler is expected)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()


def _backbone(source: str, trust_remote_code: bool, from_config: bool) -> nn.Module:
    with _quiet_transformers():
        return _load_backbone(source, trust_remote_code, from_config)


def _load_backbone(source: str, trust_remote_code: bool, from_config: bool) -> nn.Module:
    from transformers import AutoConfig, AutoModel

    kwargs = {"trust_remote_code": trust_remote_code}
    try:
        if from_config:
            config = AutoConfig.from_pretrained(source, **kwargs)
            try:
                return AutoModel.from_config(config, add_pooling_layer=False, **kwargs)
            except TypeError:
                return AutoModel.from_config(config, **kwargs)
        try:
            return AutoModel.from_pretrained(source, add_pooling_layer=False, **kwargs)
        except TypeError:
            return AutoModel.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot load model {source}: {first}") from exc


def _tokenizer(source: str, trust_remote_code: bool):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load the tokenizer of {source}: {str(exc).splitlines()[0]}") from exc


def build_encoder(cfg: BenchmarkConfig, device: str | torch.device | None = None) -> Encoder:
    """The arm ``cfg`` describes (standard or MAW) on top of ``cfg.model.name``.

    MAW parameters (routers, appended blocks) are initialised from ``cfg.seed`` so
    both arms of an experiment start from the same weights.
    """
    source = resolve_model(cfg.model.name)
    backbone = _backbone(source, cfg.model.trust_remote_code, from_config=False)
    tokenizer = _tokenizer(source, cfg.model.trust_remote_code)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        enc = Encoder(backbone, tokenizer, cfg.model, cfg.maw)
    return enc.to(device) if device is not None else enc


def check_model_fits(cfg: BenchmarkConfig) -> None:
    """Check MAW settings against the model's config (depth vs head width, layer indices) before any work."""
    from transformers import AutoConfig

    from maw_bench.modeling.layers import check_depth, resolve_layers

    source = resolve_model(cfg.model.name)
    try:
        mcfg = AutoConfig.from_pretrained(source, trust_remote_code=cfg.model.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the config of model {cfg.model.name}: {str(exc).splitlines()[0]}") from exc
    m = cfg.maw
    if m.placement == "append":
        heads = m.num_heads or mcfg.num_attention_heads
        if mcfg.hidden_size % heads:
            raise UserError(f"maw.num_heads={heads} does not divide the hidden size {mcfg.hidden_size}; pick a divisor.")
        check_depth(m, mcfg.hidden_size, heads)
    else:
        check_depth(m, mcfg.hidden_size, mcfg.num_attention_heads)
        resolve_layers(m.layers, mcfg.num_hidden_layers)


def load_encoder(directory: str | Path, device: str | torch.device | None = None) -> Encoder:
    """Load what ``Encoder.save`` wrote, exactly."""
    path = Path(directory)
    meta_file = path / META_FILE
    if not meta_file.is_file():
        raise UserError(f"{path} is not a saved maw-bench encoder (no {META_FILE}); pass a folder written by `train`.")
    meta = json.loads(meta_file.read_text())
    model_cfg = _build(ModelConfig, meta["model"], "model.")
    maw_cfg = _build(MAWConfig, meta["maw"], "maw.")
    backbone = _backbone(str(path), model_cfg.trust_remote_code, from_config=True)
    tokenizer = _tokenizer(str(path), model_cfg.trust_remote_code)
    enc = Encoder(backbone, tokenizer, model_cfg, maw_cfg)
    state = load_file(str(path / WEIGHTS_FILE))
    enc.load_state_dict(state, strict=True)
    return enc.to(device) if device is not None else enc


def is_saved_encoder(path: str | Path) -> bool:
    return (Path(path) / META_FILE).is_file()
