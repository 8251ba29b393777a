"""The dense encoder: a HuggingFace ``AutoModel`` with MAW plugged in, pooling and ``encode``.

``build_encoder(cfg)`` makes either arm from one config (``maw.enabled``);
``Encoder.forward`` returns one typed :class:`EncoderOutput` (embeddings of every
sample and the route records of every MAW layer). Saving and loading live in
:mod:`maw_bench.modeling.saving`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from maw_bench.config import AttentionConfig, BenchmarkConfig, MAWConfig, ModelConfig
from maw_bench.errors import UserError
from maw_bench.maw import MAWAttention, RouteRecord, RouteRecorder, SelectionStrategy
from maw_bench.mechanisms import mechanism_table
from maw_bench.modeling.dropout_tape import DropoutTape
from maw_bench.modeling.group_forward import FirstSample, shared_samples, take_rows
from maw_bench.modeling.layers import arm_spec, encoder_layers
from maw_bench.modeling.loading import check_encodes_alone, load_backbone, load_tokenizer, published_max_length
from maw_bench.modeling.plug import plug
from maw_bench.modeling.resolve import resolve_model
from maw_bench.modeling.st_recipe import concrete_model_cfg
from maw_bench.runtime import rng


def autocast_context(device: torch.device, dtype: str):
    """bf16/fp16 autocast where the device supports it; fp32 is a no-op context."""
    if dtype == "fp32":
        return contextlib.nullcontext()
    if dtype == "fp16" and device.type != "cuda":
        raise UserError("dtype fp16 needs a CUDA device; use bf16 or fp32 on the CPU.")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if dtype == "bf16" else torch.float16)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """Mean over real tokens (an all-padding row gives zeros, not NaN), the first token, or the last real token
    (``lasttoken``, as sentence-transformers pools decoder embedders; right or left padding alike)."""
    if how == "cls":
        return hidden[:, 0]
    if how == "lasttoken":
        positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
        last = (attention_mask.bool() * (positions + 1)).argmax(1)  # the last position whose mask is 1
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    if how != "mean":  # "auto" is resolved by build_encoder, from the model's own folder
        raise ValueError(f"pooling {how!r}: an encoder pools by mean, cls or lasttoken")
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


def check_finite(vecs: torch.Tensor, kind: str, dtype: str, example: str) -> None:
    """Stop at the first embedding that is NaN or infinite: searched, it would rank at random and score a
    plausible low number with exit 0."""
    bad = ~torch.isfinite(vecs).all(dim=-1)
    if not bool(bad.any()):
        return
    why = (f"the model overflows in {dtype}: encode with --dtype fp32 (or bf16)" if dtype == "fp16" else
           "the weights hold NaN or inf (a diverged or damaged model): retrain it or restore the folder")
    raise UserError(f"{int(bad.sum())} of {len(vecs)} {kind} embeddings in a batch are not finite (the batch "
                    f"begins with {example[:60]!r}); {why}.")


@dataclass
class EncoderOutput:
    """What one forward returns, whatever the sample count.

    ``embeddings``: ``(G, B, dim)`` L2-normalised (kept as pooled for model.similarity=dot), one row block per sample (``G = 1``
    except for GRPO's group); ``routes[g][l]``: the route record of MAW layer ``l``
    (bottom to top) in sample ``g`` (empty lists for the standard arm).
    """

    embeddings: torch.Tensor
    routes: list[list[RouteRecord]]

    @property
    def single(self) -> torch.Tensor:
        """``(B, dim)``: the embeddings of the first (usually only) sample."""
        return self.embeddings[0]


class Encoder(nn.Module):
    """A bi-encoder for queries and documents (shared weights).

    ``forward(input_ids, attention_mask)`` returns an :class:`EncoderOutput`;
    ``encode(texts)`` batches, sorts by length and runs under ``inference_mode``.
    """

    def __init__(self, backbone: nn.Module, tokenizer, model_cfg: ModelConfig, maw_cfg: MAWConfig,
                 attention_cfg: AttentionConfig | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.model_cfg = model_cfg
        self.maw_cfg = maw_cfg
        self.attention_cfg = attention_cfg or AttentionConfig()
        base_params = sum(p.numel() for p in backbone.parameters())
        self.maw_layers: list[int] = []
        self.mechanism_layers: list[int] = []  # layers whose attention another mechanism replaced (gated, diff)
        # the length the base model was published with: evaluation encodes with it (training uses model.*)
        self.published_max_length: int = 512
        # the arm as data (modeling/plug.py), built by the same function the export's modelling code calls
        self.spec = arm_spec(backbone, maw_cfg, self.attention_cfg)
        self.blocks = plug(backbone, self.spec, mechanism_table())
        # the mechanism runs inside the family's attention module, called through transformers' attention interface
        # (modeling/interface.py), not in a replaced BERT self-attention
        self.via_interface = self.spec["sites"] is not None
        if maw_cfg.placement != "append":
            self.maw_layers = list(self.spec["maw_layers"])
            self.mechanism_layers = list(self.spec["mechanism"]["layers"]) if self.spec["mechanism"] else []
        # the mechanism under test besides MAW (gated, diff), in place or in the appended blocks; None without one
        self.mechanism: str | None = (self.attention_cfg.mechanism if not maw_cfg.enabled
                                      and self.attention_cfg.mechanism != "standard" else None)
        for i, m in enumerate(self.maw_modules()):
            m.layer_index = i
        # what this arm adds to the pretrained encoder (routers, depth projections, blocks, gates, second maps)
        self.params_added = sum(p.numel() for p in self.parameters()) - base_params

    # ---------------------------------------------------------------- structure
    def in_backbone_dtype(self) -> Encoder:
        """The added weights (routers, gates, blocks) in the dtype the backbone loaded in (``model.weights_dtype``)."""
        dtype = next(self.backbone.parameters()).dtype
        return self if all(p.dtype == dtype for p in self.parameters()) else self.to(dtype)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dim(self) -> int:
        return self.backbone.config.hidden_size

    def added_parameters(self) -> list[nn.Parameter]:
        """The weights this arm adds to steer attention (MAW's routers, gates, differential attention's second map
        and lambdas), each once, by object: every module that declares ``added_parameters()`` says which. They
        learn at ``train.router_lr``, stay trainable under LoRA and are frozen by ``attention.freeze_added``;
        appended blocks are new layers of the encoder, not steering weights."""
        seen: dict[int, nn.Parameter] = {}
        for m in self.modules():
            if m is not self and hasattr(m, "added_parameters"):
                seen.update((id(p), p) for p in m.added_parameters())
        return list(seen.values())

    def maw_modules(self) -> list[MAWAttention]:
        return [m for m in self.modules() if isinstance(m, MAWAttention)]

    @property
    def strategy(self) -> SelectionStrategy | None:
        """The selection strategy of the MAW layers (one config, so one strategy); None for the standard arm."""
        modules = self.maw_modules()
        return modules[0].strategy if modules else None

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
        samples: int = 1,
        focus: bool = False,
        generator: torch.Generator | None = None,
    ) -> EncoderOutput:
        """Embeddings and routes; ``samples=G`` gives ``G`` forwards that differ only in the sampled depths.

        Goes through ``forward`` (not a side method) so a DDP wrapper sees every pass.
        ``focus`` asks MAW layers for the focus of each map (GRPO's ``reward: focus``);
        ``generator`` is the source of routing noise (depth draws, Gumbel noise), so the
        global random stream, and with it every dropout mask, stays that of the standard arm.
        """
        feats = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            feats["token_type_ids"] = token_type_ids
        modules = self.maw_modules()
        group = samples if modules else 1
        uniforms = self._uniforms(modules, group, input_ids.shape[0], input_ids.device, generator) if group > 1 else None
        recorder = RouteRecorder(focus=focus, uniforms=uniforms, generator=generator)
        with self._recording(modules, recorder):
            embs = self._embed(feats) if group == 1 else self._embed_samples(feats, group, recorder)
        if samples > 1 and group == 1:  # no MAW layer: every sample is the same forward
            embs = embs.expand(samples, *embs.shape[1:])
            recorder.records = recorder.records * samples
        return EncoderOutput(embs, recorder.records)

    @contextlib.contextmanager
    def _recording(self, modules: list[MAWAttention], recorder: RouteRecorder):
        for m in modules:
            m.recorder = recorder
        try:
            yield
        finally:
            for m in modules:
                m.recorder = None

    @staticmethod
    def _uniforms(
        modules: list[MAWAttention], group: int, batch: int, device, generator: torch.Generator | None
    ) -> list[list[torch.Tensor]]:
        """Random numbers for every sample's depth draws, drawn before the group is replayed."""
        def heads(m: MAWAttention) -> int:
            return m.num_heads if (m.router is not None and m.router.granularity == "head") else 1

        return [[torch.rand(batch, heads(m), device=device, generator=generator) for m in modules] for _ in range(group)]

    def _embed(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """One plain forward: ``(1, B, dim)``."""
        kwargs = {k: v for k, v in feats.items() if k != "input_ids"}
        hidden = self.backbone(input_ids=feats["input_ids"], **kwargs).last_hidden_state
        return self._head(hidden, feats["attention_mask"])[None]

    def _head(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if len(self.blocks):
            mask = attention_mask.bool()[:, None, None, :]
            for blk in self.blocks:
                hidden = blk(hidden, mask)
        pooled = pool(hidden, attention_mask, self.model_cfg.pooling).float()
        return pooled if self.model_cfg.similarity == "dot" else F.normalize(pooled, dim=-1)

    def _embed_samples(self, feats: dict[str, torch.Tensor], n: int, recorder: RouteRecorder) -> torch.Tensor:
        """``n`` forwards that differ only in the MAW layers' sampled choices: ``(n, B, dim)``.

        Everything below the lowest MAW layer runs once. With one MAW layer and a strategy
        whose choices follow from the logits (GRPO), each distinct (sequence, choice) pair
        is computed once (:mod:`maw_bench.modeling.group_forward`); otherwise each further
        sample re-runs the MAW layers and what lies above them from the random state the
        first sample had there, so every sample draws the same dropout masks (the depth
        draws use the recorder's pre-drawn numbers). Stacking the samples into one batch
        was measured slower on CPU (1.99x against 1.67x a standard step for a group of 4,
        see docs/benchmarks.md).
        """
        modules = self.maw_modules()
        share = (self.maw_cfg.grpo.share_choices and len(modules) == 1 and modules[0].strategy.choices_from_uniforms
                 and not self.via_interface)
        tape = DropoutTape(feats["attention_mask"].shape[0]) if share else None
        first = self._first_sample(feats, tape)
        if tape is not None and tape.faithful:
            return shared_samples(first, n, recorder, tape, modules[0])
        out = [first.embeddings]
        for _ in range(n - 1):
            recorder.next_sample()
            rng.restore(first.start)
            out.append(first.upper(None))
        return torch.stack(out)

    def _first_sample(self, feats: dict[str, torch.Tensor], tape: DropoutTape | None) -> FirstSample:
        """The first sample on the whole batch (its masks from the MAW layer up kept on ``tape``, if given)."""
        mask = feats["attention_mask"]
        device, batch = mask.device, mask.shape[0]
        scope = tape if tape is not None else contextlib.nullcontext()
        if self.via_interface:  # the family's own layers and norms: each sample re-runs the whole forward
            start = rng.snapshot(device)
            with scope:
                emb = self._embed(feats)[0]
            return FirstSample(emb, lambda rows: self._embed(feats)[0], start)
        if self.maw_cfg.placement == "append" or not self.maw_layers:
            kwargs = {k: v for k, v in feats.items() if k != "input_ids"}
            hidden = self.backbone(input_ids=feats["input_ids"], **kwargs).last_hidden_state
            start = rng.snapshot(device)
            if tape is not None:
                tape.state = "record"
            with scope:
                emb = self._head(hidden, mask)
            return FirstSample(emb, lambda rows: self._head(hidden if rows is None else hidden[rows],
                                                            mask if rows is None else mask[rows]), start)
        layers = encoder_layers(self.backbone)
        first = self.maw_layers[0]
        captured: dict = {}

        def grab(_module, args, kwargs):
            captured["args"], captured["kwargs"], captured["rng"] = args, kwargs, rng.snapshot(device)
            if tape is not None:
                tape.state = "record"

        handle = layers[first].register_forward_pre_hook(grab, with_kwargs=True)
        try:
            with scope:
                emb = self._embed(feats)[0]
        finally:
            handle.remove()

        def upper(rows: torch.Tensor | None) -> torch.Tensor:
            args, kwargs = captured["args"], captured["kwargs"]
            if rows is not None:
                args, kwargs = take_rows(args, rows, batch), take_rows(kwargs, rows, batch)
            h = args[0]
            for layer in layers[first:]:
                h = layer(h, *args[1:], **kwargs)
                h = h[0] if isinstance(h, tuple) else h
            return self._head(h, mask if rows is None else mask[rows])

        return FirstSample(emb, upper, captured["rng"])

    # ------------------------------------------------------------------ encode
    def encode_batches(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        kind: str = "doc",
        max_length: int | None = None,
        dtype: str = "fp32",
        usage: dict | None = None,
    ) -> Iterator[tuple[list[int], torch.Tensor]]:
        """Yield ``(positions, embeddings)`` batch by batch, longest texts first (see ``_token_batches``).

        ``usage``: a dict this fills with how often each MAW layer chose each depth
        (``{"layer <i>": [count per depth]}``, per head with a head router).
        """
        was_training = self.training
        self.eval()
        device = self.device
        try:
            with torch.inference_mode(), autocast_context(device, dtype):
                for pos, feats in self._token_batches(texts, batch_size, kind, max_length):
                    out = self(**{k: v.to(device) for k, v in feats.items()})
                    if usage is not None:
                        self._count_depths(out.routes[0], usage)
                    vecs = out.single.float().cpu()
                    check_finite(vecs, kind, dtype, texts[pos[0]])
                    yield pos, vecs
        finally:
            self.train(was_training)

    def _token_batches(self, texts: Sequence[str], batch_size: int, kind: str, max_length: int | None,
                       window: int = 64) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
        """``(positions, padded features)`` per batch, in order of token count, longest first: a batch pads to its
        longest text, so batching by tokens pads less than by characters as sentence-transformers batches
        (SciFact at batch 32: 4% fewer token positions, 7% less attention). Texts are first ordered by characters,
        then tokenized once per window of ``window`` batches (memory stays that of one window on any corpus) and
        ordered by tokens within it; ties keep the character order, so the batches are the same on every run."""
        prefix = self.model_cfg.query_prefix if kind == "query" else self.model_cfg.doc_prefix
        limit = max_length or (self.model_cfg.query_max_length if kind == "query" else self.model_cfg.max_length)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), batch_size * window):
            chunk = order[start:start + batch_size * window]
            enc = self.tokenizer([prefix + texts[i] for i in chunk], truncation=True, max_length=limit)
            keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
            local = sorted(range(len(chunk)), key=lambda j: -len(enc["input_ids"][j]))
            for at in range(0, len(local), batch_size):
                rows = local[at:at + batch_size]
                feats = self.tokenizer.pad({k: [enc[k][j] for j in rows] for k in keys}, return_tensors="pt")
                yield [chunk[j] for j in rows], {k: feats[k] for k in keys}

    def _count_depths(self, routes: list[RouteRecord], usage: dict) -> None:
        for r in routes:
            chosen = r.chosen()
            if chosen is None:
                continue  # an even mixture (uniform) has no depth that carried the most weight
            name = f"layer {self.maw_layer_names()[r.layer]}"
            depth = r.weights.shape[-1]
            if chosen.dim() == 1:
                counts = torch.bincount(chosen.cpu(), minlength=depth).tolist()
                usage[name] = [a + b for a, b in zip(usage.get(name, [0] * depth), counts)]
            else:
                per_head = [torch.bincount(chosen[:, h].cpu(), minlength=depth).tolist() for h in range(chosen.shape[1])]
                prev = usage.get(name, [[0] * depth for _ in per_head])
                usage[name] = [[a + b for a, b in zip(p, c)] for p, c in zip(prev, per_head)]

    def maw_layer_names(self) -> list[str]:
        """Readable names of the MAW layers, bottom to top: encoder layer indices or ``+k`` for appended blocks."""
        if self.maw_cfg.placement == "append":
            return [f"+{i}" for i in range(len(self.maw_modules()))]
        return [str(i) for i in self.maw_layers]

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        kind: str = "doc",
        max_length: int | None = None,
        dtype: str = "fp32",
    ) -> torch.Tensor:
        """Embeddings ``(N, dim)``, float32 (unit vectors unless model.similarity=dot), in the order of ``texts``."""
        out = torch.empty(len(texts), self.dim)
        for pos, emb in self.encode_batches(texts, batch_size, kind, max_length, dtype):
            out[pos] = emb
        return out


def build_encoder(cfg: BenchmarkConfig, device: str | torch.device | None = None) -> Encoder:
    """The arm ``cfg`` describes (standard or MAW) on top of ``cfg.model.name``.

    MAW parameters (routers, appended blocks) are initialised from ``cfg.seed`` so
    both arms of an experiment start from the same weights.
    """
    source = resolve_model(cfg.model.name)
    model_cfg = concrete_model_cfg(cfg.model, source, warn=True)
    backbone = load_backbone(source, cfg.model.trust_remote_code, from_config=False, revision=cfg.model.revision,
                             attn_implementation=cfg.model.attn_implementation, weights_dtype=cfg.model.weights_dtype)
    tokenizer = load_tokenizer(source, cfg.model.trust_remote_code, cfg.model.revision)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        enc = Encoder(backbone, tokenizer, model_cfg, cfg.maw, cfg.attention).in_backbone_dtype()
    enc.published_max_length = published_max_length(
        source, tokenizer, getattr(backbone.config, "max_position_embeddings", None))
    return enc.to(device) if device is not None else enc


def check_model_fits(cfg: BenchmarkConfig) -> None:
    """Check MAW settings against the model's config (depth vs head width, layer indices) before any work."""
    from transformers import AutoConfig

    from maw_bench.modeling.layers import check_depth, resolve_layers

    source = resolve_model(cfg.model.name)
    try:
        mcfg = AutoConfig.from_pretrained(source, trust_remote_code=cfg.model.trust_remote_code,
                                          **({"revision": cfg.model.revision} if cfg.model.revision else {}))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the config of model {cfg.model.name}: {str(exc).splitlines()[0]}") from exc
    check_lengths(cfg, mcfg)
    check_encodes_alone(mcfg, cfg.model.name)
    m = cfg.maw
    replaces = m.placement != "append" and (m.enabled or cfg.attention.mechanism != "standard")
    model = None
    if replaces or cfg.train.lora.enabled:  # both look at the modules: one meta build serves them
        from maw_bench.modeling.sites import meta_model

        model = meta_model(mcfg, cfg.model.trust_remote_code)
    if cfg.train.lora.enabled:  # the default names BERT's maps: another family hears it now, not after the data
        from maw_bench.modeling.sites import check_lora_targets

        check_lora_targets(model, list(cfg.train.lora.target_modules))
    sites = None
    if replaces:
        from maw_bench.modeling.layers import check_kernel, check_sites
        from maw_bench.modeling.sites import check_replace_layout

        sites = check_replace_layout(model)  # MPNet, DeBERTa, ALBERT ...: one line, now
        if sites is not None:
            check_sites(m, sites, cfg.attention.mechanism)
            check_kernel(cfg.model.attn_implementation, mcfg.model_type)
        resolve_layers(m.layers, len(sites) if sites is not None else mcfg.num_hidden_layers)
    if not m.enabled or sites is not None:
        return
    if m.placement == "append":
        heads = m.num_heads or mcfg.num_attention_heads
        if mcfg.hidden_size % heads:
            raise UserError(f"maw.num_heads={heads} does not divide the hidden size {mcfg.hidden_size}; pick a divisor.")
        check_depth(m, mcfg.hidden_size, heads)
    else:
        check_depth(m, mcfg.hidden_size, mcfg.num_attention_heads)


# models whose position ids start after the padding index, so two positions are never used for tokens
_POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2, "longformer": 2, "mpnet": 2}


def position_limit(model_config) -> int | None:
    """The most tokens the model's position embeddings can encode (None when the config does not say)."""
    positions = getattr(model_config, "max_position_embeddings", None)
    if not isinstance(positions, int) or positions <= 0:
        return None
    return positions - _POSITION_OFFSET.get(getattr(model_config, "model_type", ""), 0)


def check_lengths(cfg: BenchmarkConfig, model_config) -> None:
    """Every configured max length within the model's position embeddings (else an index error mid-encode)."""
    limit = position_limit(model_config)
    if limit is None:
        return
    for key, value in (("model.max_length", cfg.model.max_length), ("model.query_max_length", cfg.model.query_max_length),
                       ("eval.max_length", cfg.eval.max_length), ("eval.query_max_length", cfg.eval.query_max_length)):
        if value > limit:
            raise UserError(f"{key}={value} (--max-length) is longer than the {limit} positions model "
                            f"{cfg.model.name} can encode; use at most {limit}.")
