"""TREC run files: ``qid Q0 docid rank score tag``, readable by trec_eval, ranx and ir_measures."""

from __future__ import annotations

from pathlib import Path

from maw_bench.runtime.atomic import atomic_open


def trec_order(hits: dict[str, float]) -> list[tuple[str, float]]:
    """One query's hits in trec_eval's order: score descending, ties by document id descending.

    Every metric maw-bench reports ranks hits this way (ranx's own sort leaves ties in an
    order that differs between its compiled and interpreted code), so ``metrics.json``
    equals trec_eval on the written run file, ties included.
    """
    return sorted(hits.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)


def write_trec(path: str | Path, hits: dict[str, dict[str, float]], tag: str) -> None:
    """Scores are written with 9 significant digits, enough to keep every float32 score (and so the order) exact."""
    tag = "".join(c if c.isalnum() or c in "-_." else "_" for c in tag) or "run"
    with atomic_open(path, "w") as f:
        for qid in sorted(hits):
            for rank, (doc_id, score) in enumerate(trec_order(hits[qid]), 1):
                f.write(f"{qid} Q0 {doc_id} {rank} {score:.9g} {tag}\n")


def read_trec(path: str | Path) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            qid, _, doc_id, _, score, _ = line.split()
            out.setdefault(qid, {})[doc_id] = float(score)
    return out
