"""Sampling caps for quick runs: ``data.max_queries`` and ``data.max_docs``, deterministic by seed.

Every judged document of a kept query is kept; the rest is filled with documents
ranked by a seeded hash of their id (one streaming pass, a bounded heap: no list of
the whole corpus).
"""

from __future__ import annotations

import hashlib
import heapq
import logging

from maw_bench.data.bundle import DatasetBundle

log = logging.getLogger("maw_bench")


def seeded_rank(seed: int, key: str) -> int:
    """A stable pseudo-random rank of ``key`` under ``seed`` (same on every machine)."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "big")


def apply_caps(bundle: DatasetBundle, max_queries: int = 0, max_docs: int = 0, seed: int = 13) -> DatasetBundle:
    """Restrict ``bundle`` in place to at most ``max_queries`` judged queries and ``max_docs`` documents, and
    record on it what was kept of how much (``bundle.sample``), so that a score on a sample says so."""
    queries_total = docs_total = None
    if max_queries > 0:
        judged = sorted(bundle.judged_queries())
        queries_total = len(judged)
        if len(judged) > max_queries:
            bundle.keep_queries = set(sorted(judged, key=lambda q: seeded_rank(seed, q))[:max_queries])
    if max_docs > 0:
        docs_total = bundle.docs_count()
        required = {d for docs in bundle.qrels.values() for d in docs}
        need = max_docs - len(required)
        heap: list[tuple[int, str]] = []  # max-heap of the `need` smallest ranks (negated)
        if need > 0:
            for doc_id in bundle.doc_ids_iter():
                if doc_id in required:
                    continue
                item = (-seeded_rank(seed, doc_id), doc_id)
                if len(heap) < need:
                    heapq.heappush(heap, item)
                elif item > heap[0]:
                    heapq.heapreplace(heap, item)
        existing = set(bundle.doc_texts(required)) if required else set()
        bundle.keep_docs = existing | {d for _, d in heap}
    kept_queries, kept_docs = len(bundle.judged_queries()), bundle.docs_count() if docs_total else None
    if kept_queries < (queries_total or 0) or (docs_total and kept_docs < docs_total):
        bundle.sample = {"queries": kept_queries, "queries_total": queries_total or kept_queries, "docs": kept_docs,
                         "docs_total": docs_total, "eval_seed": seed}
    if max_queries > 0 or max_docs > 0:
        log.info(
            "%s: kept %d queries and %d documents (caps: max_queries=%d, max_docs=%d, seed=%d)",
            bundle.id, len(bundle.judged_queries()), bundle.docs_count(), max_queries, max_docs, seed,
        )
    return bundle


def sample_words(sample: dict | None) -> str:
    """What a sample kept of how much ("80 of 120 documents (data.max_docs), eval seed 13"); the whole collection
    where there is none."""
    if not sample:
        return "the whole collection"
    kept = []
    if sample.get("docs_total") and sample["docs"] < sample["docs_total"]:
        kept.append(f"{sample['docs']:,} of {sample['docs_total']:,} documents (data.max_docs)")
    if sample["queries"] < sample["queries_total"]:
        kept.append(f"{sample['queries']:,} of {sample['queries_total']:,} judged queries (data.max_queries)")
    return f"{' and '.join(kept)}, eval seed {sample['eval_seed']}"


def sample_note(dataset: str, sample: dict) -> str:
    """One sentence saying that a collection was scored on a sample, of how much, and what that does."""
    docs_capped = bool(sample.get("docs_total")) and sample["docs"] < sample["docs_total"]
    effect = ("fewer distractors score higher than the whole corpus does, so these are not the published numbers"
              if docs_capped else "the mean of a sample of the queries, not of the published set")
    return (f"{dataset}: scored on a sample, {sample_words(sample)}: {effect}; "
            "set both caps to 0 for the whole collection.")
