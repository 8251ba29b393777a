"""Training examples ``(query, positive, negatives)`` with hard negatives.

Sources: the collection's own triples (MS MARCO, streamed), BM25 hard negatives
mined once with ``bm25s`` over the corpus (a rank window, never a judged positive),
or random documents from a bounded reservoir. Examples hold ids; texts are looked
up per batch through the docstore.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass

from maw_bench.data.bundle import DatasetBundle
from maw_bench.errors import UserError

log = logging.getLogger("maw_bench")

RESERVOIR = 200_000


@dataclass(frozen=True)
class TrainingExample:
    query_id: str
    positive_id: str
    negative_ids: tuple[str, ...]


def _reservoir(bundle: DatasetBundle, size: int, rng: random.Random) -> list[str]:
    pool: list[str] = []
    for n, doc_id in enumerate(bundle.doc_ids_iter()):
        if n < size:
            pool.append(doc_id)
        else:
            j = rng.randrange(n + 1)
            if j < size:
                pool[j] = doc_id
    return pool


def _positive_pairs(bundle: DatasetBundle) -> list[tuple[str, str]]:
    pairs = []
    for qid in sorted(bundle.judged_queries()):
        for doc_id in sorted(bundle.positives(qid)):
            pairs.append((qid, doc_id))
    if not pairs:
        raise UserError(f"{bundle.id} has no query with a positive judgement to train on.")
    return pairs


def _top_up(negs: list[str], pool: list[str], banned: set[str], count: int, rng: random.Random) -> list[str]:
    """Add random documents from ``pool`` until ``count``, never a judged positive or a repeat."""
    candidates = [d for d in pool if d not in banned and d not in negs]
    if len(candidates) < count - len(negs):
        raise UserError(f"the corpus has too few documents for {count} negatives per query; lower train.negatives.")
    while len(negs) < count:
        cand = rng.choice(candidates)
        if cand not in negs:
            negs.append(cand)
    return negs


def random_negatives(bundle: DatasetBundle, count: int, seed: int) -> list[TrainingExample]:
    rng = random.Random(seed)
    pool = _reservoir(bundle, RESERVOIR, rng)
    out = []
    for qid, pos in _positive_pairs(bundle):
        negs = _top_up([], pool, bundle.positives(qid), count, rng)
        out.append(TrainingExample(qid, pos, tuple(negs)))
    return out


def bm25_negatives(bundle: DatasetBundle, count: int, window: tuple[int, int], seed: int) -> list[TrainingExample]:
    """Negatives drawn from BM25 ranks ``[lo, hi)`` of each query, excluding judged positives."""
    from maw_bench.data.bm25 import bm25_top_k, read_corpus

    ids, texts = read_corpus(bundle)
    lo, hi = window
    k = min(hi, len(ids))
    pairs = _positive_pairs(bundle)
    qids = sorted({q for q, _ in pairs})
    queries = bundle.queries
    hits, _ = bm25_top_k(texts, [queries[q] for q in qids], k, label=f"negatives {bundle.id}")
    del texts
    ranked = {q: [ids[j] for j in row] for q, row in zip(qids, hits.tolist())}
    rng = random.Random(seed)
    out = []
    for qid, pos in pairs:
        banned = bundle.positives(qid)
        window_ids = [d for d in ranked[qid][lo:hi] if d not in banned]
        if len(window_ids) >= count:
            negs = rng.sample(window_ids, count)
        else:  # a tiny corpus: top up with random documents
            negs = _top_up(list(window_ids), ids, banned, count, rng)
        out.append(TrainingExample(qid, pos, tuple(negs)))
    return out


def triple_examples(bundle: DatasetBundle, limit: int | None = None) -> Iterator[TrainingExample]:
    """The collection's own (query, positive, negative) triples, streamed."""
    if not bundle.has_docpairs():
        raise UserError(f"{bundle.id} has no training triples; use data.negatives.source=bm25 or random.")
    stream = (TrainingExample(q, p, (n,)) for q, p, n in bundle.docpairs_iter())
    return itertools.islice(stream, limit) if limit else stream


def build_examples(
    bundle: DatasetBundle, source: str, count: int, window: tuple[int, int], seed: int, limit: int | None = None
) -> list[TrainingExample]:
    """All training examples of ``bundle`` (``limit`` caps streamed triples), deterministic by seed."""
    if source == "triples" or (bundle.has_docpairs() and not bundle.has_qrels()):
        examples = list(triple_examples(bundle, limit))
    elif count == 0:
        examples = [TrainingExample(q, p, ()) for q, p in _positive_pairs(bundle)]
    elif source == "bm25":
        examples = bm25_negatives(bundle, count, window, seed)
    else:
        examples = random_negatives(bundle, count, seed)
    log.info("%s: %d training examples (%s negatives)", bundle.id, len(examples), source)
    return examples
