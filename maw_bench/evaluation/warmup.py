"""Compile ranx's numba code ahead of an evaluation, in a background process.

ranx compiles its functions with numba the first time they run on a machine, and the
compiled signature depends on the width of the document ids (numpy ``<U{n}`` arrays):
about a minute on a 2-core CPU, most of a first ``maw-bench smoke``'s evaluation. The
result is cached under ``NUMBA_CACHE_DIR``, so compiling it in another process while
training runs lets the evaluation find it ready. Nothing here changes a result; a
warm-up that is late or fails only means the evaluation compiles for itself.

    python -m maw_bench.evaluation.warmup '{"metrics": ["ndcg@10"], "qrels_width": 6, "run_width": 6}'
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np


def warm_up(metrics: list[str], qrels_width: int, run_width: int) -> None:
    """Score a tiny run whose ids have these widths, and run the paired tests once."""
    from maw_bench.evaluation.metrics import score_run
    from maw_bench.evaluation.significance import paired_test

    def ids(width: int, n: int) -> list[str]:  # n distinct ids of exactly ``width`` characters (n <= 10)
        return [(f"d{i}" + "x" * width)[:max(width, 2)] for i in range(n)]

    judged, ranked = ids(qrels_width, 3), ids(run_width, 4)
    qrels = {f"q{i}": {judged[i]: 1, judged[(i + 1) % 3]: 2} for i in range(3)}
    hits = {f"q{i}": {d: 1.0 / (r + 1 + i) for r, d in enumerate(ranked)} for i in range(3)}
    score_run(qrels, hits, metrics)
    paired_test(np.array([0.1, 0.5, 0.3, 0.9]), np.array([0.2, 0.4, 0.6, 0.8]), n_permutations=100)


def start(metrics: list[str], qrels_width: int, run_width: int) -> subprocess.Popen | None:
    """Start :func:`warm_up` in a low-priority child process (numba's cache folder already set); None if it cannot."""
    from maw_bench.evaluation.metrics import _numba_cache

    _numba_cache()
    spec = json.dumps({"metrics": list(metrics), "qrels_width": qrels_width, "run_width": run_width})
    try:
        return subprocess.Popen([sys.executable, "-m", "maw_bench.evaluation.warmup", spec],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                preexec_fn=(lambda: os.nice(10)) if hasattr(os, "nice") else None)
    except OSError:
        return None


def start_for(metrics: list[str], bundle) -> subprocess.Popen | None:
    """:func:`start` with the id widths of ``bundle`` (its judged documents, and every document a run can hold)."""
    qrels_width = max((len(d) for docs in bundle.qrels.values() for d in docs), default=2)
    run_width = max((len(d) for d in bundle.doc_ids_iter()), default=2)
    return start(metrics, qrels_width, run_width)


def main() -> None:
    spec = json.loads(sys.argv[1])
    warm_up(spec["metrics"], int(spec["qrels_width"]), int(spec["run_width"]))


if __name__ == "__main__":
    main()
