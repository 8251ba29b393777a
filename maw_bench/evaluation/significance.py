"""Paired significance between arms: Student t and Fisher randomisation (SciPy), Holm-Bonferroni.

Each comparison is one (dataset, metric, model vs reference) pair over the same
queries. Holm's correction runs across every comparison of a report, per test.

The randomisation test is SciPy's ``permutation_test`` (swaps within each query's
pair), not ranx's: ranx draws its permutations inside a numba parallel loop whose
worker threads the seed does not reach, so the same call returned p = 0.7719,
0.7741 and 0.7777 in one process, and it costs a numba compile on a first run.
SciPy's is seeded, vectorised, and exact (all 2^n swaps) when 2^n <= n_permutations.
"""

from __future__ import annotations

import math
import warnings
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
    """``(p_student, p_fisher)``, both two-sided; identical score vectors give 1.0 for both.

    The Fisher p-value is reproducible: the same scores and seed give the same p on any machine.
    """
    from scipy.stats import permutation_test, ttest_rel

    reference, model = np.asarray(reference, float), np.asarray(model, float)
    if np.array_equal(reference, model):
        return 1.0, 1.0
    with warnings.catch_warnings():  # a constant difference is "precision loss" to SciPy; its p is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        p_t = float(ttest_rel(reference, model, alternative="two-sided").pvalue)
    p_f = permutation_test((model, reference), _mean_difference, permutation_type="samples", vectorized=True,
                           n_resamples=n_permutations, alternative="two-sided", rng=np.random.default_rng(seed)).pvalue
    return (p_t if math.isfinite(p_t) else 1.0), float(min(1.0, p_f))


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


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
