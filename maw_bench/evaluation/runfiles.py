"""TREC run files: ``qid Q0 docid rank score tag``, readable by trec_eval, ranx and ir_measures."""

from __future__ import annotations

from pathlib import Path

from maw_bench.atomic import atomic_open


def write_trec(path: str | Path, hits: dict[str, dict[str, float]], tag: str) -> None:
    tag = "".join(c if c.isalnum() or c in "-_." else "_" for c in tag) or "run"
    with atomic_open(path, "w") as f:
        for qid in sorted(hits):
            ranked = sorted(hits[qid].items(), key=lambda kv: (-kv[1], kv[0]))
            for rank, (doc_id, score) in enumerate(ranked, 1):
                f.write(f"{qid} Q0 {doc_id} {rank} {score:.6f} {tag}\n")


def read_trec(path: str | Path) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            qid, _, doc_id, _, score, _ = line.split()
            out.setdefault(qid, {})[doc_id] = float(score)
    return out
