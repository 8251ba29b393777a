"""How maw-bench's evaluation stages grow with the corpus: time and peak memory at 10k, 100k and 1M documents.

Generates BEIR-layout corpora of short synthetic documents (never committed) and a
tiny random BERT (hidden 32, 2 layers), so the model costs little and what is
measured is maw-bench's own pipeline: reading (first use, docstore build included),
the corpus content hash, encoding into the embedding cache, a cache hit, exact
search, FAISS (Flat) search and BM25 (index + search). Each stage runs in its own
process, with fresh caches where the stage is a first run, and reports wall time
and the process's peak RSS (and the RSS after imports, so the stage's own share shows).

    python scripts/bench_scale.py                           # 10k, 100k, 1M (about 15 min on 2 cores)
    python scripts/bench_scale.py --sizes 10000,100000 --output /tmp/scale.json

Prints a table with the growth from 100k to 1M per stage (1.0 = linear) and a line
extrapolating each stage to MS MARCO's 8.8M passages; writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

STAGES = ("read", "hash", "encode", "cache-hit", "exact", "faiss", "bm25")
MSMARCO = 8_841_823
VOCAB = [f"w{i}" for i in range(2000)]


def make_corpus(folder: Path, docs: int, queries: int, seed: int = 0) -> None:
    """A BEIR folder: ``docs`` documents of 8-20 words, ``queries`` queries of 4 words of one document each."""
    if (folder / "done").is_file():
        return
    rng = random.Random(seed)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    judged = set(rng.sample(range(docs), queries))
    picked = {}
    with (folder / "corpus.jsonl").open("w") as f:
        for i in range(docs):
            words = [rng.choice(VOCAB) for _ in range(rng.randint(8, 20))]
            if i in judged:
                picked[i] = rng.sample(words, 4)
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": " ".join(words)}) + "\n")
    with (folder / "queries.jsonl").open("w") as f, (folder / "qrels" / "test.tsv").open("w") as q:
        q.write("query-id\tcorpus-id\tscore\n")
        for n, (i, words) in enumerate(sorted(picked.items())):
            f.write(json.dumps({"_id": f"q{n}", "text": " ".join(words)}) + "\n")
            q.write(f"q{n}\td{i}\t1\n")
    (folder / "done").write_text("ok\n")


def make_model(folder: Path) -> None:
    if (folder / "config.json").is_file():
        return
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *VOCAB]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64)
    BertModel(cfg, add_pooling_layer=False).save_pretrained(folder)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------ one stage in a child process
def child(stage: str, folder: Path, model: Path, cache: Path) -> dict:
    import torch

    from maw_bench import BenchmarkConfig, build_encoder
    from maw_bench.data import load_bundle
    from maw_bench.data.bm25 import bm25_top_k, read_corpus
    from maw_bench.evaluation.embeddings import encode_corpus
    from maw_bench.evaluation.search import exact_search, faiss_search

    torch.set_num_threads(os.cpu_count() or 1)
    after_imports = rss_mb()
    bundle = load_bundle(str(folder), "test")
    if stage in ("encode", "cache-hit", "exact", "faiss"):
        enc = build_encoder(BenchmarkConfig.load(overrides=[f"model.name={model}"]))

    def corpus_cache():
        return encode_corpus(enc, bundle, cache / "embeddings", 512, 32, "fp32", shard_docs=50_000)

    def query_vectors():
        queries = bundle.judged_queries()
        return list(queries), enc.encode([queries[q] for q in queries], batch_size=512, kind="query", max_length=32)

    if stage in ("exact", "faiss"):  # the cache is warm: these stages time the search alone
        c = corpus_cache()
        qids, q = query_vectors()
    start = time.perf_counter()
    if stage == "read":
        n = sum(1 for _ in bundle.docs_iter())
        assert n == bundle.docs_count()
    elif stage == "hash":
        bundle.content_hash()
    elif stage in ("encode", "cache-hit"):
        c = corpus_cache()
        assert c.reused == (stage == "cache-hit"), f"{stage}: the cache was {'' if c.reused else 'not '}re-used"
    elif stage == "exact":
        exact_search(q, qids, c.shards(), top_k=100)
    elif stage == "faiss":
        faiss_search("Flat", q, qids, c.shards(), top_k=100)
    elif stage == "bm25":
        ids, texts = read_corpus(bundle)
        queries = bundle.judged_queries()
        bm25_top_k(texts, list(queries.values()), k=100)
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 3), "peak_rss_mb": round(rss_mb(), 1), "rss_after_imports_mb": round(after_imports, 1)}


def run_stage(stage: str, size: int, work: Path, queries: int) -> dict:
    folder, cache = work / f"corpus-{size}", work / f"cache-{size}"
    env = {**os.environ, "MAW_BENCH_CACHE": str(cache), "IR_DATASETS_HOME": str(work / f"irds-{size}"),
           "NUMBA_CACHE_DIR": str(work / "numba")}
    if stage == "read":  # a first read: no docstore yet
        shutil.rmtree(work / f"irds-{size}", ignore_errors=True)
    if stage == "hash":
        shutil.rmtree(cache / "content-hashes", ignore_errors=True)
    if stage == "encode":
        shutil.rmtree(cache / "embeddings", ignore_errors=True)
    cmd = [sys.executable, __file__, "--child", stage, "--folder", str(folder), "--model", str(work / "tiny-bert"),
           "--cache", str(cache)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise SystemExit(f"stage {stage} at {size:,} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ report
def growth(table: dict, stage: str, key: str, small: int, large: int) -> float | None:
    a, b = table.get(str(small), {}).get(stage), table.get(str(large), {}).get(stage)
    if not a or not b or a[key] <= 0:
        return None
    return (b[key] / a[key]) / (large / small)


def extrapolate(table: dict, stage: str, sizes: list[int]) -> tuple[float, float]:
    """Seconds and peak RSS (MB) at MS MARCO size: time linear from the largest size, memory from the slope."""
    big, small = sizes[-1], sizes[-2]
    b, s = table[str(big)][stage], table[str(small)][stage]
    seconds = b["seconds"] * MSMARCO / big
    slope = max(b["peak_rss_mb"] - s["peak_rss_mb"], 0.0) / (big - small)
    return seconds, b["peak_rss_mb"] + slope * (MSMARCO - big)


def report(table: dict, sizes: list[int]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="maw-bench evaluation stages by corpus size (seconds / peak RSS MB)")
    t.add_column("stage")
    for n in sizes:
        t.add_column(f"{n:,}", justify="right")
    if len(sizes) >= 2:
        t.add_column(f"time growth {sizes[-2]:,}->{sizes[-1]:,} (1.0 = linear)", justify="right")
        t.add_column(f"at {MSMARCO:,} (extrapolated)", justify="right")
    for stage in STAGES:
        row = [stage] + [f"{table[str(n)][stage]['seconds']:.2f} s / {table[str(n)][stage]['peak_rss_mb']:.0f}"
                         for n in sizes]
        if len(sizes) >= 2:
            g = growth(table, stage, "seconds", sizes[-2], sizes[-1])
            sec, mem = extrapolate(table, stage, sizes)
            row += [f"{g:.2f}" if g is not None else "-", f"{sec / 60:.1f} min / {mem / 1024:.1f} GB"]
        t.add_row(*row)
    Console().print(t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=1000, help="Judged queries per corpus.")
    ap.add_argument("--workdir", default="/tmp/maw-bench-scale", help="Where corpora and caches go (kept for reruns).")
    ap.add_argument("--output", default="", help="Write the figures as JSON here.")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--folder", default="", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="", help=argparse.SUPPRESS)
    ap.add_argument("--cache", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.folder), Path(args.model), Path(args.cache))))
        return
    work = Path(args.workdir)
    sizes = [int(s) for s in args.sizes.split(",")]
    make_model(work / "tiny-bert")
    table: dict = {}
    for size in sizes:
        make_corpus(work / f"corpus-{size}", size, min(args.queries, size))
        table[str(size)] = {}
        for stage in STAGES:
            table[str(size)][stage] = run_stage(stage, size, work, args.queries)
            print(f"{size:>9,} {stage:<10} {table[str(size)][stage]}", flush=True)
    report(table, sizes)
    if args.output:
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
        Path(args.output).write_text(json.dumps({"sizes": sizes, "stages": table, "cpu": cpu,
                                                 "cores": os.cpu_count()}, indent=2))


if __name__ == "__main__":
    main()
