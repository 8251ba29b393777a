"""Retrieval over cached embeddings: exact chunked inner product + top-k (default) or FAISS.

Exact search keeps a running top-k per query and scores ``chunk_size`` documents at
a time, so memory is bounded by the chunk, not the corpus.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch

from maw_bench.errors import UserError

Hits = dict[str, dict[str, float]]


def exact_search(
    queries: torch.Tensor,
    query_ids: list[str],
    shards: Iterable[tuple[list[str], np.ndarray]],
    top_k: int,
    chunk_size: int = 50_000,
    drop_self: bool = False,
    advance: Callable[[int], None] | None = None,
    query_block: int = 2048,
) -> Hits:
    """Top-``top_k`` documents by inner product for every query (``advance(n)``: n more documents searched).

    Memory is bounded by one block of scores (``query_block x chunk_size`` floats, 400 MB at the defaults):
    each chunk's own top-k is merged into the running top-k, so no candidate index array as wide as the
    chunk is ever built.
    """
    k = top_k + (1 if drop_self else 0)
    q = queries.float()
    best_scores = torch.full((len(query_ids), 0), float("-inf"))
    best_idx = torch.zeros((len(query_ids), 0), dtype=torch.long)
    all_ids: list[str] = []
    for ids, emb in shards:
        for start in range(0, len(ids), chunk_size):
            chunk = torch.from_numpy(np.ascontiguousarray(emb[start : start + chunk_size])).float()
            offset = len(all_ids) + start
            merged_scores, merged_idx = [], []
            for b in range(0, len(query_ids), query_block):
                scores = q[b : b + query_block] @ chunk.T
                top_c = torch.topk(scores, min(k, chunk.shape[0]), dim=1)
                cand_scores = torch.cat([best_scores[b : b + query_block], top_c.values], 1)
                cand_idx = torch.cat([best_idx[b : b + query_block], top_c.indices + offset], 1)
                top = torch.topk(cand_scores, min(k, cand_scores.shape[1]), dim=1)
                merged_scores.append(top.values)
                merged_idx.append(torch.gather(cand_idx, 1, top.indices))
            if merged_scores:
                best_scores, best_idx = torch.cat(merged_scores), torch.cat(merged_idx)
            if advance is not None:
                advance(chunk.shape[0])
        all_ids.extend(ids)
    return _to_hits(query_ids, best_scores.numpy(), best_idx.numpy(), all_ids, top_k, drop_self)


def faiss_search(
    factory: str,
    queries: torch.Tensor,
    query_ids: list[str],
    shards: Iterable[tuple[list[str], np.ndarray]],
    top_k: int,
    drop_self: bool = False,
    advance: Callable[[int], None] | None = None,
) -> Hits:
    """Search with a FAISS index built from ``factory`` (e.g. ``Flat``, ``HNSW32``, ``IVF1024,Flat``)."""
    try:
        import faiss
    except ImportError:
        raise UserError("eval.index=faiss:... needs faiss; `pip install maw-bench[faiss]` or use eval.index=exact.") from None
    all_ids: list[str] = []
    blocks = []
    for ids, emb in shards:
        all_ids.extend(ids)
        blocks.append(np.asarray(emb, dtype=np.float32))
        if advance is not None:
            advance(len(ids))
    data = np.concatenate(blocks) if blocks else np.zeros((0, queries.shape[1]), np.float32)
    try:
        index = faiss.index_factory(data.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise UserError(f"faiss cannot build index {factory!r}: {str(exc).splitlines()[0]}") from None
    if not index.is_trained:
        index.train(data)
    index.add(data)
    k = min(top_k + (1 if drop_self else 0), len(all_ids))
    scores, idx = index.search(queries.float().numpy(), k)
    return _to_hits(query_ids, scores, idx, all_ids, top_k, drop_self)


def _to_hits(query_ids, scores, idx, all_ids, top_k, drop_self) -> Hits:
    out: Hits = {}
    for row, qid in enumerate(query_ids):
        hits: dict[str, float] = {}
        for s, j in zip(scores[row].tolist(), idx[row].tolist()):
            if j < 0:
                continue
            doc_id = all_ids[j]
            if drop_self and doc_id == qid:
                continue
            if len(hits) < top_k:
                hits[doc_id] = float(s)
        out[qid] = hits
    return out


def bm25_search(doc_ids: list[str], texts: list[str], queries: dict[str, str], top_k: int, drop_self: bool = False) -> Hits:
    """The BM25 baseline through ``bm25s`` (Lucene-style scoring, English stopwords)."""
    from maw_bench.data.bm25 import bm25_top_k

    qids = list(queries)
    k = min(top_k + (1 if drop_self else 0), len(doc_ids))
    idx, scores = bm25_top_k(texts, [queries[q] for q in qids], k)
    return _to_hits(qids, scores, idx, doc_ids, top_k, drop_self)
