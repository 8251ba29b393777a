"""Metrics through ranx: mean and per-query scores, graded relevance as the qrels give it."""

from __future__ import annotations

import os
from pathlib import Path

from maw_bench.errors import UserError


def _numba_cache() -> None:
    """ranx compiles with numba on first use (~16 s); keep the compiled code between runs."""
    if "NUMBA_CACHE_DIR" not in os.environ:
        from maw_bench.paths import cache_root

        os.environ["NUMBA_CACHE_DIR"] = str(cache_root() / "numba")


def check_metrics(metrics: list[str]) -> None:
    """Accept exactly what ranx computes (``ndcg@10``, ``dcg@5``, ``rbp.95``, ``map@100-l2`` ...); cut-offs >= 1."""
    _numba_cache()
    from ranx.meta.evaluate import extract_metric_and_params
    from ranx.metrics import metric_switch

    for m in metrics:
        try:
            name, k, level = extract_metric_and_params(str(m))
            metric_switch(name)
        except (ValueError, TypeError, IndexError):
            raise UserError(f"unknown metric {m!r}; use names ranx computes, such as ndcg@10, mrr@10, recall@100, "
                            "map@1000, dcg@10, rbp.95.") from None
        if ("@" in str(m) and name != "rbp" and k < 1) or level < 1:
            raise UserError(f"metric {m!r}: a cut-off (and a relevance level) must be >= 1, e.g. ndcg@10.")


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
