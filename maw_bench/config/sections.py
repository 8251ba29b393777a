"""The config's sections as dataclasses (the schema): every key with its default, help and range."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from maw_bench.config.fields import _f

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



@dataclass
class ModelConfig:
    name: str = _f(DEFAULT_MODEL, "HF model id or local folder (anything AutoModel loads).")
    pooling: str = _f("auto", "Pooling of token vectors: auto | mean | cls | lasttoken (auto: as the model's "
                              "sentence-transformers Pooling config says, mean for a model without one; lasttoken: "
                              "the last real token, as decoder embedders such as Qwen3-Embedding pool).")
    similarity: str = _f("auto", "How a query scores a document: auto | cosine | dot (auto: dot where the model's "
                                 "sentence-transformers config says so, as TAS-B's does, else cosine). cosine "
                                 "L2-normalises the embeddings; dot keeps their norms (train with train.temperature=1).")
    max_length: int = _f(256, "Maximum tokens for documents.", ge=2)
    query_max_length: int = _f(64, "Maximum tokens for queries.", ge=2)
    query_prefix: str = _f("", "Text put before every query (e.g. 'query: ' for E5).")
    doc_prefix: str = _f("", "Text put before every document (e.g. 'passage: ' for E5).")
    prompts: str = _f("auto", "auto | none. auto: an empty model.query_prefix / model.doc_prefix takes the prompt the "
                              "model's sentence-transformers config declares ('query'; 'document', 'passage' or "
                              "'corpus'), as MTEB and encode_query / encode_document use them; none: only the prefixes.")
    trust_remote_code: bool = _f(False, "Allow model code from the hub to run. Off unless you trust it.")
    revision: str = _f("", "The hub revision (branch, tag or commit) of model.name and its tokenizer ('' = the "
                           "default branch), as from_pretrained's revision; recorded in run.json.")
    attn_implementation: str = _f("", "transformers' attention kernel for the backbone: '' (its default) | eager | "
                                      "sdpa | flash_attention_2 | flex_attention ...; the same for every arm, "
                                      "recorded in run.json.")
    weights_dtype: str = _f("float32", "The dtype the backbone's weights load in (from_pretrained's dtype): float32 "
                                       "(full-precision master weights; compute precision is train.dtype / --dtype) | "
                                       "bfloat16 | float16 | auto (the checkpoint's own, e.g. bf16 for Qwen3-Embedding); "
                                       "every arm's added weights follow it; recorded in run.json.")


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
                            "bf16; on a CPU, bf16 where a probe measured it at least 1.2x as fast as fp32, once per "
                            "machine and cached; fp32 elsewhere).")
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
    relevance_level: int = _f(0, "Lowest grade binary metrics (recall, MAP, MRR, precision) count as relevant; "
                                 "0 = the collection's convention: 2 on TREC DL passage judgments (as TREC and "
                                 "Pyserini score them), 1 elsewhere. nDCG always uses the grades.", ge=0)
    relevance_scale: str = _f("defined", "defined | raw: grades as gains. defined maps a collection's codes to gains "
                                         "that grow with relevance where its files carry them the other way round "
                                         "(Cranfield: Cleverdon's 1 = complete answer ... 4 = minimum interest, -1 = "
                                         "none, scored as 5 - code and 0); raw scores the codes as ir_datasets "
                                         "yields them, to compare with tools that do.")
    self_hits: str = _f("auto", "auto | drop | keep: a hit whose document id is the query's own id. auto drops it "
                                "where BEIR and MTEB do (ArguAna, Quora, CQADupStack, and local folders of those "
                                "names) and keeps it elsewhere, warning when such hits are retrieved.")
    ranx_engine: str = _f("auto", "auto | compiled | interpreted: how ranx's numba code runs (same numbers either "
                                  "way). auto interprets when a process scores at most 5M run entries (queries x "
                                  "top_k x runs), where that is faster than compiling or loading compiled code.")


