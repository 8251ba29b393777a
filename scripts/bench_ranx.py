"""ranx compiled vs interpreted: what scoring one run costs a fresh process, for the ``eval.ranx_engine`` rule.

Each measurement is a new process (numba settles the engine at import), scoring a synthetic run of
N queries x top_k hits with the given metrics through ``maw_bench.evaluation.metrics.score_run``,
timed from before ranx's import to the end of the scoring. The compiled engine is timed twice
per size: once with an empty numba cache (a machine's first evaluation) and once with the cache
that run left (every later one).

    python scripts/bench_ranx.py                      # 120, 1000 and 5000 queries x 1000 hits
    python scripts/bench_ranx.py --queries 300 --top-k 100
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = """
import json, sys, time
import numpy as np
from maw_bench.evaluation.metrics import score_run, use_ranx_engine
engine, n, k, metrics = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
rng = np.random.default_rng(0)
qrels = {f"q{i}": {f"d{j}": int(rng.integers(1, 3)) for j in rng.choice(100_000, 3, replace=False)} for i in range(n)}
hits = {q: {f"d{j}": float(s) for j, s in zip(rng.choice(100_000, k, replace=False), rng.random(k))} for q in qrels}
start = time.perf_counter()
use_ranx_engine(engine, 0)
means, _ = score_run(qrels, hits, metrics)
print("RESULT", json.dumps({"seconds": time.perf_counter() - start, "means": means}))
"""


def measure(engine: str, n: int, k: int, metrics: list[str], numba_cache: str) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": numba_cache, "NUMBA_DISABLE_JIT": ""}
    out = subprocess.run([sys.executable, "-c", CHILD, engine, str(n), str(k), json.dumps(metrics)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.split("RESULT", 1)[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", default="120,1000,5000", help="Comma-separated query counts.")
    ap.add_argument("--top-k", type=int, default=1000)
    ap.add_argument("--metrics", default="ndcg@10,mrr@10,recall@100,map@1000")
    args = ap.parse_args()
    metrics = args.metrics.split(",")
    print(f"{'queries':>8} {'entries':>10} {'interpreted':>12} {'compiled, cold':>15} {'compiled, warm':>15}")
    for n in map(int, args.queries.split(",")):
        with tempfile.TemporaryDirectory() as cache:
            cold = measure("compiled", n, args.top_k, metrics, cache)
            warm = measure("compiled", n, args.top_k, metrics, cache)
            interp = measure("interpreted", n, args.top_k, metrics, cache)
        same = all(abs(interp["means"][m] - warm["means"][m]) <= 1e-12 for m in metrics)
        print(f"{n:>8} {n * args.top_k:>10,} {interp['seconds']:>11.1f}s {cold['seconds']:>14.1f}s "
              f"{warm['seconds']:>14.1f}s{'' if same else '   (scores differ!)'}")


if __name__ == "__main__":
    main()
