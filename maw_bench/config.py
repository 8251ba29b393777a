"""One typed configuration for every command: ``BenchmarkConfig``.

Sections ``model``, ``maw``, ``data``, ``train`` and ``eval`` are dataclasses whose
fields carry their default and a one-line help. A config comes from YAML plus
dotted overrides (``maw.depth=4``) whose values parse as YAML. Unknown keys and
invalid combinations are :class:`UserError` s that say what to change.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from maw_bench.errors import UserError
from maw_bench.metric_names import ENGINES as RANX_ENGINES
from maw_bench.metric_names import check_metrics, max_cutoff

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Named arms: overrides of ``maw.*`` on the shared config. Every arm gets the same seed, data and steps.
DEFAULT_ARMS: dict[str, list[str]] = {
    "standard": ["maw.enabled=false", "attention.mechanism=standard"],
    "gated": ["maw.enabled=false", "attention.mechanism=gated"],
    "diff": ["maw.enabled=false", "attention.mechanism=diff"],
    "maw": ["maw.enabled=true"],
    "maw-nested": ["maw.enabled=true", "maw.variant=nested"],
    "maw-full": ["maw.enabled=true", "maw.variant=full"],
    "maw-gumbel": ["maw.enabled=true", "maw.selection=gumbel"],
    "maw-uniform": ["maw.enabled=true", "maw.selection=uniform"],
    "maw-fixed0": ["maw.enabled=true", "maw.selection=fixed:0"],
}


def _f(default: Any, help: str, ge: float | None = None, gt: float | None = None, lt: float | None = None,  # noqa: A002
       le: float | None = None) -> Any:
    """A dataclass field with a default (copied if mutable), a help line and the range it accepts.

    The range (``ge``/``gt``/``lt``/``le``) is the schema: :func:`check_ranges` enforces it for every
    key when a config is built, so a value a library would refuse at step 1 (or after the encoding)
    is one line before any work.
    """
    meta = {"help": help, **{k: v for k, v in (("ge", ge), ("gt", gt), ("lt", lt), ("le", le)) if v is not None}}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: typing.cast(Any, type(d)(d)), metadata=meta)
    return field(default=default, metadata=meta)


RANGE_WORDS = {"ge": ">=", "gt": ">", "lt": "<", "le": "<="}


def range_text(meta: typing.Mapping) -> str:
    """``'>= 1 and < 10'`` for a field's declared range ('' when it has none)."""
    return " and ".join(f"{RANGE_WORDS[k]} {meta[k]}" for k in RANGE_WORDS if k in meta)


def check_ranges(obj: Any, prefix: str = "") -> None:
    """Every numeric key within the range its field declares, else one :class:`UserError` naming it."""
    import operator

    ops = {"ge": operator.ge, "gt": operator.gt, "lt": operator.lt, "le": operator.le}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            check_ranges(value, f"{prefix}{f.name}.")
            continue
        bad = [k for k in ops if k in f.metadata and not ops[k](value, f.metadata[k])]
        if bad:
            raise UserError(f"{prefix}{f.name}={value!r} is out of range: it must be {range_text(f.metadata)} "
                            f"(default {f.default!r}).")


@dataclass
class ModelConfig:
    name: str = _f(DEFAULT_MODEL, "HF model id or local folder (anything AutoModel loads).")
    pooling: str = _f("mean", "Pooling of token vectors: mean | cls.")
    max_length: int = _f(256, "Maximum tokens for documents.", ge=2)
    query_max_length: int = _f(64, "Maximum tokens for queries.", ge=2)
    query_prefix: str = _f("", "Text put before every query (e.g. 'query: ' for E5).")
    doc_prefix: str = _f("", "Text put before every document (e.g. 'passage: ' for E5).")
    trust_remote_code: bool = _f(False, "Allow model code from the hub to run. Off unless you trust it.")


@dataclass
class GRPOConfig:
    group_size: int = _f(4, "Depth choices sampled per sequence in each training step.", ge=2)
    clip: float = _f(0.2, "PPO-style ratio clip epsilon.", gt=0)
    kl: float = _f(0.02, "Weight of the KL penalty to the reference policy.", ge=0)
    entropy: float = _f(0.01, "Weight of the entropy bonus.", ge=0)
    iterations: int = _f(1, "Policy updates per sampled group (mu); the clip acts only when > 1.", ge=1)
    share_choices: bool = _f(
        True, "Samples of a group that chose the same depth for a sequence share one forward from the MAW layer up "
        "(the same loss and gradients; with one MAW layer); false re-runs every sample.")
    ref_update_every: int = _f(
        0, "Copy the policy into the KL reference every N optimiser steps (0 = keep the initial, uniform policy).",
        ge=0)


@dataclass
class RouterConfig:
    granularity: str = _f("sequence", "One depth choice per sequence, or per sequence and head: sequence | head.")
    detach_input: bool = _f(True, "Detach the router's input, so router losses train the router only, not the encoder.")
    init_last_prob: float = _f(
        -1.0, "Initial probability of the last depth (0 = uniform; -1 = auto: 0.7 for variant=nested, whose last "
        "depth is the pretrained head, so the arm starts at the pretrained encoder; uniform otherwise).")


@dataclass
class GumbelConfig:
    tau: float = _f(1.0, "Gumbel-softmax temperature.", gt=0)


@dataclass
class MAWConfig:
    enabled: bool = _f(False, "Use MAW attention (the 'maw' arm); false is the standard arm.")
    depth: int = _f(4, "Number of attention maps (depths) each head chooses among.", ge=1)
    variant: str = _f(
        "split",
        "split (cut the head's Q/K into depth chunks) | nested (depth t = first d_h/2^(D-1-t) dims; the last is "
        "the pretrained head) | full (one projection per depth).",
    )
    init_noise: float = _f(0.05, "variant=full: noise (x weight std) added to each depth's copy of Q/K to break symmetry.", ge=0)
    layers: Any = _f([-1], "Encoder layers whose self-attention becomes MAW: list of indices (negative ok) or 'all'.")
    placement: str = _f("replace", "replace (swap attention in place) | append (add blocks on top).")
    num_blocks: int = _f(1, "With placement=append: how many blocks to add.", ge=1)
    num_heads: int = _f(0, "With placement=append: heads per added block (0 = the encoder's).", ge=0)
    selection: str = _f("grpo", "A registered selection strategy: grpo | gumbel | soft | uniform | fixed:<t>.")
    router: RouterConfig = field(default_factory=RouterConfig)
    reward: str = _f("task", "GRPO reward: task (-InfoNCE per query) | rank (1/rank of positive) | focus.")
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    gumbel: GumbelConfig = field(default_factory=GumbelConfig)


@dataclass
class GatedConfig:
    granularity: str = _f("head", "Gate per head (one scalar per token and head) | channel (one per output dimension).")


@dataclass
class DiffConfig:
    lambda_init: float = _f(0.0, "Initial lambda of every head (0 = start exactly at the pretrained map).", ge=-1, le=1)


@dataclass
class AttentionConfig:
    mechanism: str = _f("standard", "Attention at maw.layers other than MAW (which maw.enabled turns on): standard | "
                                    "gated | diff (maw_bench/mechanisms).")
    freeze_added: bool = _f(False, "Keep the weights the mechanism adds at their initial values (the side-by-side "
                                   "law: then the arm trains exactly as standard).")
    gated: GatedConfig = field(default_factory=GatedConfig)
    diff: DiffConfig = field(default_factory=DiffConfig)


@dataclass
class NegativesConfig:
    source: str = _f("bm25", "Hard negatives: triples (collection's own) | bm25 | random.")
    bm25_window: list = _f([10, 100], "BM25 rank window [lo, hi) negatives are drawn from.")


@dataclass
class DataConfig:
    train: str = _f("builtin", "Training data: an ir_datasets id, a local BEIR folder, builtin, or rows "
                               "(query, positive[, negative...]): hf:ORG/NAME[:config][@split] or a .jsonl/.parquet/.csv.")
    columns: dict = _f({}, "Row columns when their names differ: {query: anchor, positive: pos, negatives: [neg1, neg2]}.")
    train_split: str = _f("train", "Split of a local BEIR folder or builtin used for training.")
    eval: list = _f(["builtin"], "Evaluation dataset ids.")
    eval_split: str = _f("test", "Split of local BEIR folders or builtin used for evaluation.")
    max_queries: int = _f(0, "Keep at most this many queries (0 = all): training ones drawn by seed, evaluation "
                             "ones by data.eval_seed.", ge=0)
    max_docs: int = _f(0, "Keep at most this many documents (0 = all); judged ones are always kept.", ge=0)
    eval_seed: int = _f(13, "Seed of the evaluation sample (data.max_queries/max_docs on evaluation collections): "
                            "its own, so every arm and training seed of a study scores the same queries.",
                        ge=0, lt=2**32)
    negatives: NegativesConfig = field(default_factory=NegativesConfig)
    allow_leakage: bool = _f(False, "Run even if training queries appear in evaluation.")
    drop_leaked: bool = _f(False, "Drop training queries that appear in evaluation (by id or text) and run.")


@dataclass
class LoRAConfig:
    enabled: bool = _f(False, "Train LoRA adapters (peft) instead of all encoder weights.")
    r: int = _f(8, "LoRA rank.", ge=1)
    alpha: int = _f(16, "LoRA alpha.", gt=0)
    dropout: float = _f(0.05, "LoRA dropout.", ge=0, lt=1)
    target_modules: list = _f(
        ["query", "key", "value", "dense"],
        "Module names LoRA wraps (the full variant's query_depth/key_depth are added when present).",
    )


@dataclass
class GradCacheConfig:
    chunk_size: int = _f(0, "GradCache sub-batch size (0 = off).", ge=0)


@dataclass
class TrainConfig:
    epochs: float = _f(1.0, "Passes over the training examples.", ge=0)
    max_steps: int = _f(0, "Optimiser steps; overrides epochs when > 0.", ge=0)
    batch_size: int = _f(32, "Queries per micro-batch.", ge=1)
    grad_accum: int = _f(1, "Micro-batches per optimiser step.", ge=1)
    lr: float = _f(2e-5, "Peak learning rate of the encoder.", gt=0, lt=1)
    router_lr: float = _f(1e-3, "Learning rate of MAW routers.", gt=0, lt=10)
    weight_decay: float = _f(0.01, "AdamW weight decay.", ge=0, lt=1)
    warmup_ratio: float = _f(0.1, "Fraction of optimiser steps of linear warm-up.", ge=0, lt=1)
    temperature: float = _f(0.05, "InfoNCE temperature.", gt=0)
    symmetric: bool = _f(False, "Add the passage-to-query InfoNCE term.")
    negatives: int = _f(1, "Hard negatives per query (drawn as data.negatives.source says).", ge=0)
    max_grad_norm: float = _f(1.0, "Gradient clipping norm (0 = off).", ge=0)
    dtype: str = _f("fp32", "fp32 | bf16 | fp16 (fp16 only on CUDA, with a grad scaler) | auto (bf16 on CUDA with "
                            "bf16 and on CPUs with AMX, fp32 elsewhere).")
    gradient_checkpointing: bool = _f(False, "Recompute activations in backward to save memory.")
    save_every: int = _f(0, "Checkpoint every N optimiser steps (0 = only at the end).", ge=0)
    log_every: int = _f(1, "Write train_log.jsonl every N optimiser steps.", ge=1)
    deterministic: bool = _f(False, "torch.use_deterministic_algorithms for bitwise resume tests.")
    report_to: list = _f([], "Also log training curves to: tensorboard (RUN/<arm>/tensorboard) and/or wandb.")
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    grad_cache: GradCacheConfig = field(default_factory=GradCacheConfig)


@dataclass
class EvalConfig:
    metrics: list = _f(["ndcg@10", "mrr@10", "recall@100", "recall@1000", "map@1000"], "ranx metric names.")
    batch_size: int = _f(32, "Encoding batch size.", ge=1)
    dtype: str = _f("fp32", "fp32 | bf16 | fp16 | auto for encoding (auto: bf16 where it is faster, see train.dtype).")
    max_length: int = _f(0, "Document max length at evaluation (0 = the length the model was published with: its "
                            "sentence-transformers max_seq_length, else its tokenizer's, capped at 512).", ge=0)
    query_max_length: int = _f(0, "Query max length at evaluation (0 = the published length, as above; training "
                                  "uses model.query_max_length).", ge=0)
    top_k: int = _f(1000, "Hits kept per query.", ge=1)
    index: str = _f("exact", "exact (chunked matmul + top-k) | faiss:<factory>.")
    chunk_size: int = _f(50000, "Documents per search chunk (bounds memory).", ge=1)
    shard_docs: int = _f(50000, "Documents per embedding shard on disk (and per rank under torchrun).", ge=1)
    cache_dir: str = _f("", "Embedding cache folder ('' = ~/.cache/maw-bench/embeddings).")
    verify_cache: bool = _f(False, "Check every cached shard's full sha256 before use (default: sizes and a hash "
                                   "of each file's first and last MiB, which catches truncated and swapped shards).")
    bm25: bool = _f(False, "Add a BM25 (bm25s) baseline.")
    ranx_engine: str = _f("auto", "auto | compiled | interpreted: how ranx's numba code runs (same numbers either "
                                  "way). auto interprets when a process scores at most 5M run entries (queries x "
                                  "top_k x runs), where that is faster than compiling or loading compiled code.")


@dataclass
class BenchmarkConfig:
    seed: int = _f(13, "Seed for sampling, initialisation and data order.", ge=0, lt=2**32)
    model: ModelConfig = field(default_factory=ModelConfig)
    maw: MAWConfig = field(default_factory=MAWConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    arms: dict = _f(DEFAULT_ARMS, "Named arms: name -> list of maw.* overrides (e.g. maw-nested: [maw.enabled=true, maw.variant=nested]).")

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | None = None) -> BenchmarkConfig:
        """Read YAML (optional), apply ``key=value`` overrides, validate."""
        raw: dict = {}
        if path is not None:
            raw = read_yaml_mapping(path)
        for item in overrides or []:
            key, value = parse_override(item)
            set_dotted(raw, key, value)
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: dict) -> BenchmarkConfig:
        cfg = _build(cls, raw, prefix="")
        cfg.validate()
        return cfg

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def derive(self, changes: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> BenchmarkConfig:
        """A validated copy with typed ``{dotted key: value}`` changes, applied in order: the one way code
        derives a config (no strings to parse, and nothing skips the checks a file gets)."""
        raw = self.to_dict()
        for key, value in (changes.items() if isinstance(changes, Mapping) else changes):
            set_dotted(raw, key, value)
        return BenchmarkConfig.from_dict(raw)

    def with_overrides(self, overrides: list[str]) -> BenchmarkConfig:
        """``derive`` from ``key=value`` strings (the command line's ``--set``, a recipe's arms and grids)."""
        return self.derive([parse_override(item) for item in overrides])

    # --------------------------------------------------------------- validation
    def validate(self) -> None:
        """Check what can be checked without the model (depth vs head is checked at build)."""
        check_ranges(self)
        m = self.maw
        _choice("model.pooling", self.model.pooling, ("mean", "cls"))
        _choice("maw.variant", m.variant, ("split", "full", "nested"))
        _choice("maw.placement", m.placement, ("replace", "append"))
        _choice("maw.router.granularity", m.router.granularity, ("sequence", "head"))
        from maw_bench.training.rewards import reward_names  # imports torch: not for --help

        _choice("maw.reward", m.reward, tuple(reward_names()))
        _choice("train.dtype", self.train.dtype, ("fp32", "bf16", "fp16", "auto"))
        _choice("eval.dtype", self.eval.dtype, ("fp32", "bf16", "fp16", "auto"))
        _choice("data.negatives.source", self.data.negatives.source, ("triples", "bm25", "random"))
        self._validate_attention()
        try:
            from maw_bench.maw.selection import parse_selection  # imports torch: not for --help

            strategy = type(parse_selection(m.selection, m.depth))
        except ValueError as exc:
            raise UserError(f"maw.selection: {exc}.") from None
        if not (m.router.init_last_prob == -1 or 0 <= m.router.init_last_prob < 1):
            raise UserError(f"maw.router.init_last_prob={m.router.init_last_prob} must be in [0, 1) or -1 (auto).")
        if not (m.layers == "all" or (isinstance(m.layers, list) and m.layers and all(isinstance(i, int) for i in m.layers))):
            raise UserError(f"maw.layers={m.layers!r} must be a non-empty list of layer indices or 'all'.")
        t = self.train
        if t.epochs <= 0 and t.max_steps <= 0:
            raise UserError("Set train.epochs > 0 or train.max_steps > 0.")
        if not isinstance(self.eval.metrics, list) or not self.eval.metrics:
            raise UserError("eval.metrics must be a non-empty list such as [ndcg@10, mrr@10].")
        check_metrics(self.eval.metrics)  # here, not at the evaluation: a study trains for hours first
        deepest = max_cutoff(self.eval.metrics)
        if deepest > self.eval.top_k:
            raise UserError(f"eval.top_k={self.eval.top_k} is below the cut-off of a metric ({deepest}), which would "
                            f"be computed on a truncated ranking; set eval.top_k={deepest} or drop that metric.")
        _choice("eval.ranx_engine", self.eval.ranx_engine, RANX_ENGINES)
        if not (self.eval.index == "exact" or self.eval.index.startswith("faiss:")):
            raise UserError(f"eval.index={self.eval.index!r}: use exact or faiss:<factory> (e.g. faiss:Flat).")
        if (t.gradient_checkpointing or t.grad_cache.chunk_size) and m.enabled and strategy.replays_layers:
            from maw_bench.maw.selection import STRATEGIES

            others = [c.name for c in STRATEGIES.values() if c.needs_router and not c.replays_layers]
            raise UserError(
                f"maw.selection={m.selection} replays the MAW layers per sample and cannot recompute them in "
                "backward; turn off train.gradient_checkpointing and train.grad_cache, or use maw.selection="
                f"{' | '.join(others)}."
            )
        validate_arms(self.arms)
        unknown_cols = [k for k in self.data.columns if k not in ("query", "positive", "negatives")]
        if unknown_cols:
            raise UserError(f"data.columns.{unknown_cols[0]}: the roles are query, positive and negatives.")
        bad = [r for r in t.report_to if r not in ("tensorboard", "wandb")]
        if bad:
            raise UserError(f"train.report_to has {bad[0]!r}; use tensorboard and/or wandb (or [] for neither).")
        lo_hi = self.data.negatives.bm25_window
        if not (isinstance(lo_hi, list) and len(lo_hi) == 2 and 0 <= lo_hi[0] < lo_hi[1]):
            raise UserError(f"data.negatives.bm25_window={lo_hi!r} must be [lo, hi] with 0 <= lo < hi.")


    def _validate_attention(self) -> None:
        """The attention mechanism (gated, diff, ...) exists, and is the arm's only attention under test."""
        from maw_bench.mechanisms import mechanism_names

        a, m = self.attention, self.maw
        _choice("attention.mechanism", a.mechanism, tuple(mechanism_names()))
        _choice("attention.gated.granularity", a.gated.granularity, ("head", "channel"))
        if a.mechanism != "standard" and m.enabled:
            raise UserError(f"attention.mechanism={a.mechanism} and maw.enabled=true: an arm has one attention under "
                            "test; set one of them (arms: gated, diff, maw, ...).")

    def ignored_settings(self) -> list[str]:
        """Settings changed from their default that have no effect in this configuration (one line each).

        A key that cannot act is never silently accepted: the commands log these as warnings.
        """
        default = BenchmarkConfig()
        m, d = self.maw, default.maw
        out = []

        def changed(get) -> bool:
            return get(self) != get(default)

        from maw_bench.maw.selection import STRATEGIES, parse_selection

        strategy = parse_selection(m.selection, m.depth)
        owners = {c.settings: c.name for c in STRATEGIES.values() if c.settings}
        for section, owner in owners.items():  # a section only one strategy reads, changed under another
            if strategy.settings == section:
                continue
            for f in dataclasses.fields(getattr(m, section)):
                if getattr(getattr(m, section), f.name) != getattr(getattr(d, section), f.name):
                    out.append(f"maw.{section}.{f.name} has no effect with maw.selection={m.selection} "
                               f"({owner} only).")
        if not strategy.uses_reward and m.reward != d.reward:
            out.append(f"maw.reward has no effect with maw.selection={m.selection} (it rewards sampled choices).")
        if strategy.settings:
            out += strategy.idle_settings(getattr(m, strategy.settings), getattr(d, strategy.settings))
        if not strategy.needs_router:
            for key in ("granularity", "detach_input", "init_last_prob"):
                if getattr(m.router, key) != getattr(d.router, key):
                    out.append(f"maw.router.{key} has no effect with maw.selection={m.selection} (no router).")
        if m.variant != "full" and changed(lambda c: c.maw.init_noise):
            out.append(f"maw.init_noise has no effect with maw.variant={m.variant} (full only).")
        if m.placement != "append":
            for key in ("num_blocks", "num_heads"):
                if getattr(m, key) != getattr(d, key):
                    out.append(f"maw.{key} has no effect with maw.placement={m.placement} (append only).")
        mech, dflt = self.attention, default.attention
        for name in ("gated", "diff"):
            if mech.mechanism != name and getattr(mech, name) != getattr(dflt, name):
                out.append(f"attention.{name} has no effect with attention.mechanism={mech.mechanism} ({name} only).")
        src = self.data.negatives.source
        if src == "triples" and self.train.negatives != 1:
            out.append(f"train.negatives={self.train.negatives} has no effect with data.negatives.source=triples "
                       "(each triple holds one negative).")
        if src != "bm25" and changed(lambda c: c.data.negatives.bm25_window):
            out.append(f"data.negatives.bm25_window has no effect with data.negatives.source={src}.")
        return out

    def arm(self, name: str) -> BenchmarkConfig:
        """The config of one named arm: the shared config plus that arm's ``maw.*`` overrides."""
        return self.with_overrides(arm_overrides(self.arms, name))


def validate_arms(arms: Any) -> None:
    """Each arm is a list of ``maw.*`` overrides: arms may differ in the attention and nothing else."""
    if not isinstance(arms, dict) or not arms:
        raise UserError("arms must map arm names to lists of maw.* overrides, e.g. maw-nested: [maw.variant=nested].")
    for name, items in arms.items():
        if not isinstance(items, list):
            raise UserError(f"arms.{name} must be a list of overrides such as [maw.enabled=true].")
        for item in items:
            key, _ = parse_override(str(item))
            if not key.startswith(("maw.", "attention.")):
                raise UserError(
                    f"arms.{name}: {key} is not a maw.* or attention.* key; arms may differ only in the attention "
                    "(seed, data and training settings are shared)."
                )


def arm_overrides(arms: dict, name: str) -> list[str]:
    """Overrides of a named arm or of a control of one (``<arm>-uniform``, ``<arm>-fixed<t>``: the strategies
    that declare themselves controls)."""
    if name in arms:
        return [str(x) for x in arms[name]]
    from maw_bench.maw.selection import STRATEGIES

    for control, cls in STRATEGIES.items():
        if not cls.is_control:
            continue
        base, sep, rest = name.rpartition(f"-{control}")
        if sep and base in arms and (rest.isdigit() if cls.takes_argument else rest == ""):
            return [*map(str, arms[base]), f"maw.selection={control}{':' + rest if rest else ''}"]
    raise UserError(f"unknown arm {name!r}; use one of {', '.join(arms)} (or <arm>-uniform, <arm>-fixed<t>), "
                    "or define it under arms: in the config.")


def control_arms(cfg: BenchmarkConfig, arm: str) -> list[str]:
    """The controls of a MAW arm: the same split with no router (``uniform``) and every ``fixed:t``."""
    from maw_bench.maw.selection import control_selections

    acfg = cfg.arm(arm)
    if not acfg.maw.enabled:
        return []
    return [arm + suffix for suffix, _ in control_selections(acfg.maw.depth)]


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"{key}={value!r} is not allowed; use one of: {', '.join(allowed)}.")


# ---------------------------------------------------------------------- YAML I/O
def read_yaml_mapping(path: str | Path) -> dict:
    """Safe-load a YAML file that must hold a mapping (Python tags are refused)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file {p} does not exist; pass a path to a YAML file.")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{p}{where}: not valid (safe) YAML: {problem}.") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{p}: the top level must be a mapping of config keys, not {type(data).__name__}.")
    return data


def parse_override(item: str) -> tuple[str, Any]:
    """``'maw.layers=[-2,-1]' -> ('maw.layers', [-2, -1])``."""
    if "=" not in item:
        raise UserError(f"override {item!r} must look like key=value, e.g. maw.depth=4.")
    key, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise UserError(f"override {item!r}: the value is not valid YAML.") from exc
    return key.strip(), value


def set_dotted(raw: dict, key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[parts[-1]] = value


def key_fields(cls: type = BenchmarkConfig, obj: Any = None, prefix: str = "") -> list[tuple[str, Any, str]]:
    """``(dotted key, value, help)`` of every leaf of the config (``obj``'s values, the defaults without it):
    one walk for suggestions, ``maw-bench config-keys`` and the CLI shorthands' help."""
    obj = cls() if obj is None else obj
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        t, value = hints[f.name], getattr(obj, f.name)
        if dataclasses.is_dataclass(t):
            out.extend(key_fields(t, value, f"{prefix}{f.name}."))
        else:
            out.append((prefix + f.name, value, f.metadata.get("help", "")))
    return out


def all_keys() -> list[str]:
    """Every dotted key of the config, for suggestions and docs."""
    return [key for key, _, _ in key_fields()]


def shorthand_help(key: str, example: str = "") -> str:
    """A CLI shorthand's help: the config key it sets and that key's own help (written once, in the schema)."""
    text = next(h for k, _, h in key_fields() if k == key)
    return f"Shorthand for --set {key}=...{f' (e.g. {example})' if example else ''}: {text}"


def _unknown_key(key: str) -> UserError:
    close = difflib.get_close_matches(key, all_keys(), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]}?" if close else "; run `maw-bench config-keys` for the list."
    return UserError(f"unknown config key {key!r}{hint}")


def _coerce(key: str, value: Any, t: Any) -> Any:
    origin = typing.get_origin(t)
    if t is Any:
        return value
    if t is bool:
        if isinstance(value, bool):
            return value
    elif t is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif t is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads '1e-4' as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif t is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif t is dict or origin is dict:
        if isinstance(value, dict):
            return value
    elif t is list or origin is list:
        if isinstance(value, list):
            return value
        if isinstance(value, (str, int)):
            return [value]
    elif origin in (Union, types.UnionType):
        return value
    else:
        return value
    name = getattr(t, "__name__", str(t))
    raise UserError(f"config key {key}={value!r} must be of type {name}.")


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise UserError(f"config section {prefix.rstrip('.') or 'top level'} must be a mapping, got {raw!r}.")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    if cls is MAWConfig and isinstance(raw.get("router"), str):  # maw.router=head (older spelling)
        raw = {**raw, "router": {"granularity": raw["router"]}}
    for key in raw:
        if key not in names:
            raise _unknown_key(prefix + str(key))
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            continue
        t = hints[f.name]
        if dataclasses.is_dataclass(t):
            kwargs[f.name] = _build(t, raw[f.name], f"{prefix}{f.name}.")
        else:
            kwargs[f.name] = _coerce(prefix + f.name, raw[f.name], t)
    return cls(**kwargs)
