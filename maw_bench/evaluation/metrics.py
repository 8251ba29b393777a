"""Metrics through ranx: mean and per-query scores, graded relevance as the qrels give it.

ranx's functions are numba code, and numba settles at import whether they are compiled
or run as plain Python. Compiling costs about 50 s on a 2-core CPU the first time and
about 10 s per process after that (loading the cached code, typing the id arrays), while
the plain-Python code scores about 300k run entries a second with the same numbers
(``python scripts/bench_ranx.py``).
So a process that scores few entries interprets ranx, and a large one compiles it:
:func:`use_ranx_engine` makes that choice, before ranx's first import in the process.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from maw_bench.evaluation.runfiles import trec_order
from maw_bench.metric_names import at_level, check_metrics

log = logging.getLogger("maw_bench")

INTERPRET_UP_TO = 5_000_000
"""Run entries (judged queries x top_k x runs) one process scores, up to which ``auto`` interprets ranx.

Where the two cost the same with a warm numba cache, on 2 cores with 4 metrics
(``python scripts/bench_ranx.py``, figures in docs/benchmarks.md).
"""


def _numba_cache() -> None:
    """ranx compiles with numba on first use (~16 s); keep the compiled code between runs."""
    if "NUMBA_CACHE_DIR" not in os.environ:
        from maw_bench.runtime.paths import cache_root

        os.environ["NUMBA_CACHE_DIR"] = str(cache_root() / "numba")


def use_ranx_engine(requested: str, entries: int) -> str:
    """Run ranx ``compiled`` or ``interpreted`` in this process; return the engine in effect.

    ``requested``: a value of ``eval.ranx_engine`` (the config has checked it).

    ``auto`` interprets when ``entries`` (run entries this process will score) is at most
    :data:`INTERPRET_UP_TO`. numba fixes the choice when ranx is first imported, so once
    ranx is loaded the engine already in effect stays (and is returned).
    """
    if "ranx" in sys.modules:
        return ranx_engine()
    engine = requested if requested != "auto" else ("interpreted" if entries <= INTERPRET_UP_TO else "compiled")
    os.environ["NUMBA_DISABLE_JIT"] = "1" if engine == "interpreted" else "0"  # read at numba's import (and reloads)
    if "numba" in sys.modules:
        from numba.core import config

        config.DISABLE_JIT = engine == "interpreted"
    log.debug("ranx engine: %s (%d run entries to score; auto interprets up to %d)", engine, entries, INTERPRET_UP_TO)
    return engine


def ranx_engine() -> str:
    """The engine ranx runs with in this process (numba's setting now, if ranx is not imported yet)."""
    from numba.core import config

    return "interpreted" if config.DISABLE_JIT else "compiled"


def score_run(
    qrels: dict[str, dict[str, int]], hits: dict[str, dict[str, float]], metrics: list[str], name: str = "run",
    relevance_level: int = 1,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Return ``(mean per metric, per-query per metric)``; judged queries with no hits score 0.

    Hits are ranked as trec_eval ranks them (:func:`maw_bench.evaluation.runfiles.trec_order`); binary metrics
    count grades >= ``relevance_level`` as relevant (trec_eval's ``-l``), under their own names.
    """
    check_metrics(metrics)
    asked = {m: at_level(m, relevance_level) for m in metrics}
    _numba_cache()
    import warnings

    from ranx import Qrels, Run, evaluate

    # ranx sees each ranking as scores n..1 in trec_eval's order, so ties rank the same under either engine
    run_dict = {q: {d: float(len(h) - i) for i, (d, _) in enumerate(trec_order(h))} for q in qrels if (h := hits.get(q))}
    run = Run.from_dict(run_dict, name=name) if run_dict else Run.from_dict({"__none__": {"__none__": 0.0}}, name=name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        means = evaluate(Qrels.from_dict(qrels), run, list(dict.fromkeys(asked.values())), make_comparable=True)
    if isinstance(means, float) or not isinstance(means, dict):
        means = {asked[metrics[0]]: float(means)}
    per_query = {m: {q: float(v) for q, v in run.scores[asked[m]].items()} for m in metrics}
    return {m: float(means[asked[m]]) for m in metrics}, per_query


def cache_dir_default() -> Path:
    from maw_bench.runtime.paths import cache_root

    return cache_root() / "embeddings"
