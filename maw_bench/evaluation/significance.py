"""Paired significance between arms: Student t and Fisher randomisation (ranx), Holm-Bonferroni.

Each comparison is one (dataset, metric, model vs reference) pair over the same
queries. Holm's correction runs across every comparison of a report, per test.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class Comparison:
    dataset: str
    metric: str
    reference: str
    model: str
    n: int
    mean_diff: float
    ci95_low: float
    ci95_high: float
    p_student: float
    p_fisher: float
    p_student_holm: float = 1.0
    p_fisher_holm: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


def paired_test(reference: np.ndarray, model: np.ndarray, n_permutations: int = 10_000, seed: int = 42) -> tuple[float, float]:
    """``(p_student, p_fisher)``; identical score vectors give 1.0 for both."""
    from maw_bench.evaluation.metrics import _numba_cache

    _numba_cache()
    from ranx.statistical_tests import fisher_randomization_test, paired_student_t_test

    if np.allclose(reference, model, atol=0, rtol=0):
        return 1.0, 1.0
    p_t, _ = paired_student_t_test(reference, model)
    p_f, _ = fisher_randomization_test(reference, model, n_permutations, 0.05, seed)
    p_t = 1.0 if not math.isfinite(p_t) else float(p_t)
    return p_t, float(p_f)


def mean_diff_ci(reference: np.ndarray, model: np.ndarray) -> tuple[float, float, float]:
    """Mean of ``model - reference`` with a paired-t 95% interval."""
    from scipy import stats

    d = np.asarray(model, float) - np.asarray(reference, float)
    mean = float(d.mean()) if len(d) else 0.0
    if len(d) < 2 or d.std(ddof=1) == 0:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
    return mean, mean - half, mean + half


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (monotone, capped at 1)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def compare(
    per_query: dict[str, dict[str, dict[str, dict[str, float]]]],
    reference: str,
    metrics: list[str],
    seed: int = 42,
) -> list[Comparison]:
    """All comparisons of a report. ``per_query[dataset][model][metric][qid] -> score``."""
    out: list[Comparison] = []
    for dataset, models in per_query.items():
        if reference not in models:
            continue
        for model, scores in models.items():
            if model == reference:
                continue
            for metric in metrics:
                ref_scores = models[reference][metric]
                qids = sorted(ref_scores)
                a = np.array([ref_scores[q] for q in qids])
                b = np.array([scores[metric].get(q, 0.0) for q in qids])
                p_t, p_f = paired_test(a, b, seed=seed)
                mean, lo, hi = mean_diff_ci(a, b)
                out.append(Comparison(dataset, metric, reference, model, len(qids), mean, lo, hi, p_t, p_f))
    for field in ("student", "fisher"):
        adjusted = holm([getattr(c, f"p_{field}") for c in out])
        for c, p in zip(out, adjusted):
            setattr(c, f"p_{field}_holm", p)
    return out
