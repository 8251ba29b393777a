"""ranx interpreted scores exactly as ranx compiled; ``auto`` picks by size; the randomisation test is reproducible."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from maw_bench.evaluation.significance import paired_test

METRICS = ["ndcg@10", "ndcg@10-l2", "ndcg_burges@10", "dcg@5", "dcg_burges@5", "map@100", "mrr@10", "recall@100",
           "precision@5", "r-precision", "f1@10", "hits@10", "hit_rate@10", "bpref", "rbp.95"]

SCORE = textwrap.dedent("""
    import json, sys
    import numpy as np
    from maw_bench.evaluation.metrics import ranx_engine, score_run, use_ranx_engine

    engine = use_ranx_engine(sys.argv[1], int(sys.argv[2]))
    rng = np.random.default_rng(7)
    ids = [f"doc-{i}" + "x" * int(rng.integers(0, 9)) for i in range(300)]   # ids of several widths
    qrels = {f"q{i}": {ids[j]: int(rng.integers(0, 4)) for j in rng.choice(300, 6, replace=False)} for i in range(40)}
    hits = {q: {ids[j]: float(np.round(rng.random(), 1)) for j in rng.choice(300, 120, replace=False)}  # ties
            for q in list(qrels)[:-3]}                                        # 3 judged queries with no hits
    hits["unjudged"] = {ids[0]: 1.0}
    means, per_query = score_run(qrels, hits, json.loads(sys.argv[3]))
    print(json.dumps({"asked": engine, "in_effect": ranx_engine(), "means": means, "per_query": per_query}))
""")


def _score(engine: str, entries: int = 0, metrics: list[str] = METRICS) -> dict:
    out = subprocess.run([sys.executable, "-c", SCORE, engine, str(entries), json.dumps(metrics)],
                         capture_output=True, text=True, env={**os.environ, "NUMBA_DISABLE_JIT": ""}, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_interpreted_ranx_scores_every_metric_exactly_as_compiled_ranx():
    """The engine is a speed choice only: all of ranx's metric families, graded levels, ties, missing hits."""
    compiled, interpreted = _score("compiled"), _score("interpreted")
    assert (compiled["in_effect"], interpreted["in_effect"]) == ("compiled", "interpreted")
    for m in METRICS:
        assert interpreted["means"][m] == pytest.approx(compiled["means"][m], rel=1e-12, abs=1e-12, nan_ok=True), m
        for q, v in compiled["per_query"][m].items():
            assert interpreted["per_query"][m][q] == pytest.approx(v, rel=1e-12, abs=1e-12, nan_ok=True), (m, q)
    assert len(compiled["per_query"]["ndcg@10"]) == 40 and compiled["per_query"]["ndcg@10"]["q39"] == 0.0


def test_auto_interprets_small_evaluations_and_compiles_large_ones():
    from maw_bench.evaluation.metrics import INTERPRET_UP_TO

    assert _score("auto", INTERPRET_UP_TO, ["ndcg@10"])["in_effect"] == "interpreted"
    probe = textwrap.dedent("""
        import sys
        from maw_bench.evaluation.metrics import use_ranx_engine
        first = use_ranx_engine("auto", int(sys.argv[1]))
        from ranx.data_structures.common import create_and_sort
        second = use_ranx_engine("interpreted", 0)                 # too late: ranx is loaded
        print(first, second, type(create_and_sort).__name__)
    """)
    out = subprocess.run([sys.executable, "-c", probe, str(INTERPRET_UP_TO + 1)], capture_output=True, text=True,
                         env={**os.environ, "NUMBA_DISABLE_JIT": ""}, timeout=300)
    assert out.stdout.split() == ["compiled", "compiled", "CPUDispatcher"], out.stderr[-2000:]


def test_randomisation_test_is_reproducible_and_exact_when_it_can_enumerate():
    rng = np.random.default_rng(1)
    a = rng.random(120)
    b = a + rng.normal(0, 0.06, 120)
    first = paired_test(a, b, seed=42)
    assert all(paired_test(a, b, seed=42) == first for _ in range(3))   # ranx's numba version drifted here
    assert paired_test(a, b, seed=43)[1] != first[1]
    x, y = rng.random(8), rng.random(8)                                 # 2^8 = 256 <= n_permutations: exact
    d, observed = y - x, abs((y - x).mean())
    count = sum(abs((np.array(s) * d).mean()) >= observed - 1e-12 for s in itertools.product([1, -1], repeat=8))
    assert paired_test(x, y)[1] == pytest.approx(count / 256, abs=1e-12)
    assert paired_test(x, x.copy()) == (1.0, 1.0)


NAMES = ["ndcg@10", "ndcg", "map@1000", "mrr@10", "mrr", "recall@100", "precision@5", "r-precision", "f1@3", "hits@10",
         "hit_rate@5", "bpref", "rbp.95", "rbp@8", "dcg@5", "dcg_burges@5", "ndcg_burges@10", "ndcg@10-l2", "map@100-l3",
         "ndgc@10", "rbp", "recall@ten", "NDCG@10", "ndcg@10-l2-l3", "ndcg@", "@10", "", "ndcg@10-lx", "mrr@10@5"]


@pytest.mark.parametrize("name", NAMES)
def test_metric_names_are_read_exactly_as_ranx_reads_them(name):
    """The config checks names without importing ranx (which would fix its engine); ranx must agree."""
    from ranx.meta.evaluate import extract_metric_and_params
    from ranx.metrics import metric_switch

    from maw_bench.metric_names import parse_metric

    try:
        family, k, level = extract_metric_and_params(name)
        metric_switch(family)
        theirs = (family, k, level)
    except (ValueError, TypeError, IndexError):
        theirs = None
    try:
        ours = parse_metric(name)
    except (ValueError, TypeError, IndexError):
        ours = None
    assert ours == theirs
