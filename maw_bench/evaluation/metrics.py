"""Metrics through ranx: mean and per-query scores, graded relevance as the qrels give it."""

from __future__ import annotations

import os
from pathlib import Path

from maw_bench.errors import UserError

DEFAULT_METRICS = ["ndcg@10", "mrr@10", "recall@100", "recall@1000", "map@1000"]


def _numba_cache() -> None:
    """ranx compiles with numba on first use (~16 s); keep the compiled code between runs."""
    if "NUMBA_CACHE_DIR" not in os.environ:
        from maw_bench.paths import cache_root

        os.environ["NUMBA_CACHE_DIR"] = str(cache_root() / "numba")


def check_metrics(metrics: list[str]) -> None:
    known = ("ndcg", "ndcg_burges", "mrr", "recall", "precision", "map", "hits", "hit_rate", "r-precision", "bpref", "f1")
    for m in metrics:
        base = m.split("@", 1)[0]
        cut = m.split("@", 1)[1] if "@" in m else "1"
        if base not in known or not cut.isdigit():
            raise UserError(f"unknown metric {m!r}; use ranx names such as ndcg@10, mrr@10, recall@100, map@1000.")


def score_run(
    qrels: dict[str, dict[str, int]], hits: dict[str, dict[str, float]], metrics: list[str], name: str = "run"
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Return ``(mean per metric, per-query per metric)``; judged queries with no hits score 0."""
    check_metrics(metrics)
    _numba_cache()
    import warnings

    from ranx import Qrels, Run, evaluate

    run_dict = {q: (hits.get(q) or {}) for q in qrels}
    run_dict = {q: h for q, h in run_dict.items() if h}
    run = Run.from_dict(run_dict, name=name) if run_dict else Run.from_dict({"__none__": {"__none__": 0.0}}, name=name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        means = evaluate(Qrels.from_dict(qrels), run, metrics, make_comparable=True)
    if isinstance(means, float) or not isinstance(means, dict):
        means = {metrics[0]: float(means)}
    per_query = {m: {q: float(v) for q, v in run.scores[m].items()} for m in metrics}
    return {m: float(v) for m, v in means.items()}, per_query


def cache_dir_default() -> Path:
    from maw_bench.paths import cache_root

    return cache_root() / "embeddings"
