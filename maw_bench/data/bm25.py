"""BM25 through ``bm25s`` (Lucene-style scoring, English stopwords), for negatives and the baseline run.

One place for both uses, with progress: a spinner while the corpus is tokenised and
indexed (bm25s has no hook inside those), a bar over query batches while searching.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from maw_bench.errors import UserError
from maw_bench.runtime.console import import_bm25s
from maw_bench.runtime.progress import step

if TYPE_CHECKING:
    from maw_bench.data.bundle import DatasetBundle

QUERY_BATCH = 2048


def read_corpus(bundle: DatasetBundle) -> tuple[list[str], list[str]]:
    """``(doc_ids, texts)`` of the whole kept corpus, in collection order (what BM25 indexes)."""
    ids, texts = [], []
    with step(f"read corpus {bundle.id}", total=bundle.docs_count()) as advance:
        for doc_id, text in bundle.docs_iter():
            ids.append(doc_id)
            texts.append(text)
            advance(1)
    return ids, texts


def bm25_top_k(texts: list[str], query_texts: list[str], k: int, label: str = "") -> tuple[np.ndarray, np.ndarray]:
    """``(positions, scores)``, each ``(len(query_texts), k)``: the best ``k`` of ``texts`` per query, best first."""
    bm25s = import_bm25s()
    retriever = bm25s.BM25()
    name = f" {label}" if label else ""
    with step(f"BM25 index{name} ({len(texts):,} docs)"):
        tokens = bm25s.tokenize(texts, stopwords="en", show_progress=False)
        if not tokens.vocab:  # bm25s itself fails with "max() arg is an empty sequence"
            raise UserError(f"BM25{name}: no document has a word of two or more letters that is not an English "
                            f"stopword ({len(texts):,} documents), so there is nothing to index; check the "
                            "collection's texts (for training negatives, data.negatives.source=random needs none).")
        retriever.index(tokens, show_progress=False)
    positions, scores = [], []
    with step(f"BM25 search{name}", total=len(query_texts)) as advance:
        for start in range(0, len(query_texts), QUERY_BATCH):
            batch = query_texts[start : start + QUERY_BATCH]
            idx, sc = retriever.retrieve(bm25s.tokenize(batch, stopwords="en", show_progress=False), k=k,
                                         show_progress=False)
            positions.append(np.asarray(idx))
            scores.append(np.asarray(sc))
            advance(len(batch))
    if not positions:
        return np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=np.float32)
    return np.concatenate(positions), np.concatenate(scores)
