"""ranx's metric names (and its engines), read without importing ranx.

Importing ranx fixes, for the whole process, whether numba compiles its code or runs
it as Python (``maw_bench.evaluation.metrics.use_ranx_engine``), and costs about 2 s.
A config is checked long before that choice is made (a study trains for hours before
it scores anything), so the names are read here the way ranx reads them
(``ranx.meta.evaluate.extract_metric_and_params`` and ``ranx.metrics.metric_switch``,
which a test compares this with).
"""

from __future__ import annotations

from maw_bench.errors import UserError

ENGINES = ("auto", "compiled", "interpreted")  # eval.ranx_engine: see maw_bench.evaluation.metrics
FAMILIES = ("hits", "hit_rate", "precision", "recall", "f1", "r-precision", "mrr", "map", "dcg", "dcg_burges", "ndcg",
            "ndcg_burges", "bpref", "rbp")


def parse_metric(metric: str) -> tuple[str, float, int]:
    """``(family, cut-off or rbp persistence, relevance level)`` as ranx reads ``metric``; ValueError if it cannot."""
    name, level = metric, "1"
    if "-l" in name:
        name, level = name.split("-l")
    if "rbp" in name:
        parts = name.split(".") if "." in name else name.split("@") if "@" in name else None
        if parts is None:
            raise ValueError("rbp needs a persistence, e.g. rbp.95")
        family, k = parts[0], float(f"0.{parts[1]}")
    else:
        parts = name.split("@")
        family, k = parts[0], (int(parts[1]) if len(parts) > 1 else 0)
    if family not in FAMILIES:
        raise ValueError(f"unknown metric family {family!r}")
    return family, k, int(level)


BINARY_FAMILIES = ("hits", "hit_rate", "precision", "recall", "f1", "r-precision", "mrr", "map", "bpref")


def at_level(metric: str, level: int) -> str:
    """The ranx name that scores ``metric`` with grades >= ``level`` relevant: binary families only (nDCG keeps
    its grades, as trec_eval's ``-l`` leaves them), and a level the name gives itself wins."""
    family, _, _ = parse_metric(metric)
    if level <= 1 or "-l" in metric or family not in BINARY_FAMILIES:
        return metric
    return f"{metric}-l{level}"


def check_metrics(metrics: list) -> None:
    """Accept exactly what ranx computes (``ndcg@10``, ``dcg@5``, ``rbp.95``, ``map@100-l2`` ...); cut-offs >= 1."""
    for m in metrics:
        try:
            family, k, level = parse_metric(str(m))
        except (ValueError, TypeError, IndexError):
            raise UserError(f"unknown metric {m!r}; use names ranx computes, such as ndcg@10, mrr@10, recall@100, "
                            "map@1000, dcg@10, rbp.95.") from None
        if ("@" in str(m) and family != "rbp" and k < 1) or level < 1:
            raise UserError(f"metric {m!r}: a cut-off (and a relevance level) must be >= 1, e.g. ndcg@10.")


def max_cutoff(metrics: list) -> int:
    """The deepest rank any of ``metrics`` reads (``recall@100`` -> 100; 0 for metrics without a cut-off)."""
    deepest = 0
    for m in metrics:
        family, k, _ = parse_metric(str(m))
        if family != "rbp" and "@" in str(m):
            deepest = max(deepest, int(k))
    return deepest
