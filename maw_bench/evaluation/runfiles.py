"""TREC run files: ``qid Q0 docid rank score tag``, readable by trec_eval, ranx and ir_measures.

A name ending ``.gz`` is written gzipped (mtime 0, so the same run gives the same bytes) and read back as such:
a study keeps its evaluations' rankings that way, cut at the depth its metrics read, so that a metric or a
qrels fix is re-scored by ``maw-bench report STUDY --rescore`` without retraining (``evaluation/rescore.py``).
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

from maw_bench.runtime.atomic import atomic_open


def trec_order(hits: dict[str, float]) -> list[tuple[str, float]]:
    """One query's hits in trec_eval's order: score descending, ties by document id descending.

    Every metric maw-bench reports ranks hits this way (ranx's own sort leaves ties in an
    order that differs between its compiled and interpreted code), so ``metrics.json``
    equals trec_eval on the written run file, ties included.
    """
    return sorted(hits.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)


def write_trec(path: str | Path, hits: dict[str, dict[str, float]], tag: str, depth: int | None = None) -> None:
    """Scores are written with 9 significant digits, enough to keep every float32 score (and so the order) exact.
    ``depth``: keep each query's first ``depth`` hits (trec_eval's order) only."""
    tag = "".join(c if c.isalnum() or c in "-_." else "_" for c in tag) or "run"
    buf = io.StringIO()
    for qid in sorted(hits):
        for rank, (doc_id, score) in enumerate(trec_order(hits[qid])[:depth], 1):
            buf.write(f"{qid} Q0 {doc_id} {rank} {score:.9g} {tag}\n")
    if str(path).endswith(".gz"):
        with atomic_open(path, "wb") as f:
            f.write(gzip.compress(buf.getvalue().encode("utf-8"), mtime=0))
    else:
        with atomic_open(path, "w") as f:
            f.write(buf.getvalue())


def read_trec(path: str | Path) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            qid, _, doc_id, _, score, _ = line.split()
            out.setdefault(qid, {})[doc_id] = float(score)
    return out
