"""One arm against the reference across a study's collections: their equal-weight average, and whether they agree.

A study scores the same trained models on every collection, so the collections share the seeds: a seed that
trains a good arm is good on every collection, and the per-collection differences are correlated through it.
The equal-weight average ``(1/K) sum_k Delta_k`` therefore takes its seed part from the seeds' own averages
over the collections, never from the collections' SEs as if independent::

    M_s = (1/K) sum_k dbar_k[s]                            (seed s, its mean difference on each collection)
    Var(average) = var_s(M_s) / S + (1/K^2) sum_k var_query_k / Q_k

The first term carries the seed variance of every collection and their covariance; the second is each
collection's query part, estimated from its own mean squares as the per-collection test does (the query factor
pooled on REML's boundary; ``maw_bench/evaluation/crossed.py``), with Satterthwaite's df evaluated the same way
(``DF_QUANTILE``). With one collection it *is* the per-collection test (a test says so).

This answers "on average over *these* collections, on new queries". Whether the collections agree is Cochran's Q
and I² (statsmodels' ``combine_effects``, on each collection's estimate and SE; shared seeds make the
collections' estimates correlated, which Q does not model). A random-effects estimate for *collections in
general* needs the between-collection variance, estimated from the collections themselves: below
:data:`MIN_COLLECTIONS_RANDOM_EFFECTS` it is not estimable in any useful sense, and the summary says so instead
of printing one. At or above it the summary adds DerSimonian-Laird with the Hartung-Knapp-Sidik-Jonkman
interval on K - 1 df.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from maw_bench.evaluation.crossed import DF_QUANTILE, _upper_factor, equivalent_within, tost_p

MIN_COLLECTIONS_RANDOM_EFFECTS = 5
"""Fewer collections than this: no random-effects estimate. With K collections the between-collection variance
rests on K - 1 df and the Hartung-Knapp interval uses t at K - 1: at K = 2 that is t_.975,1 = 12.7 (an interval
about six times wider than the normal one), at 3 4.30, at 5 2.78; below 5 the interval says little beyond "more
collections", and tau² from 2-4 estimates is 0 or unstable most of the time. BEIR has 18 collections and MTEB's
retrieval task more, so 5 is within a study's reach."""


def _query_part(d: np.ndarray, k: int) -> tuple[float, float, float, float]:
    """Collection ``d (S, Q)``'s query contribution to the average's variance and its mean squares:
    ``(coef, ms_query, ms_resid, kept)`` with the term ``coef * (ms_query - ms_resid)`` when kept."""
    s, q = d.shape
    grand, row, col = d.mean(), d.mean(1), d.mean(0)
    ms_q = s * float(((col - grand) ** 2).sum()) / (q - 1)
    ms_e = float(((d - row[:, None] - col[None, :] + grand) ** 2).sum()) / ((s - 1) * (q - 1))
    return 1.0 / (s * q * k * k), ms_q, ms_e, float(ms_q >= ms_e)


def average_difference(tables: list[np.ndarray]) -> dict:
    """The equal-weight average of the collections' mean differences: estimate, SE, Satterthwaite df, 95% CI, p.

    ``tables``: one ``(S, Q_k)`` table of per-query differences per collection, rows in the same seed order.
    """
    k = len(tables)
    s = tables[0].shape[0]
    if s < 2 or any(t.shape[0] != s for t in tables):
        raise ValueError("every collection needs the same seeds, at least 2")
    per_seed = np.stack([t.mean(1) for t in tables]).mean(0)  # M_s
    mean = float(per_seed.mean())
    seed_var = float(per_seed.var(ddof=1)) / s
    terms = [(seed_var, _upper_factor(s - 1, DF_QUANTILE), s - 1.0)]  # (value, df-factor, df)
    var = seed_var
    for t in tables:
        coef, ms_q, ms_e, kept = _query_part(t, k)
        if kept:
            q = t.shape[1]
            var += coef * (ms_q - ms_e)
            terms += [(coef * ms_q, _upper_factor(q - 1, DF_QUANTILE), q - 1.0), (-coef * ms_e, 1.0, (s - 1.0) * (q - 1))]
    num = sum(v * f for v, f, _ in terms) ** 2
    den = sum((v * f) ** 2 / df for v, f, df in terms)
    df = num / den if den > 0 else float("inf")
    se = float(np.sqrt(max(var, 0.0)))
    if se == 0:
        return {"mean_diff": mean, "se": 0.0, "df": df, "ci95_low": mean, "ci95_high": mean,
                "p_value": 1.0 if mean == 0 else 0.0}
    t975 = float(stats.t.ppf(0.975, df))
    return {"mean_diff": mean, "se": se, "df": float(df), "ci95_low": mean - t975 * se, "ci95_high": mean + t975 * se,
            "p_value": float(min(1.0, 2 * stats.t.sf(abs(mean) / se, df)))}


def heterogeneity(effects: list[float], ses: list[float]) -> dict:
    """Cochran's Q (df K - 1, its p) and I² of the collections' estimates; random effects from enough collections."""
    from statsmodels.stats.meta_analysis import combine_effects

    k = len(effects)
    var = np.maximum(np.asarray(ses, dtype=float) ** 2, 1e-300)
    res = combine_effects(np.asarray(effects, dtype=float), var, method_re="dl", use_t=True)
    q = float(res.q)
    out = {"cochran_q": q, "q_df": k - 1, "q_p": float(stats.chi2.sf(q, k - 1)) if k > 1 else None,
           "i2": float(max(0.0, 1 - (k - 1) / q)) if q > 0 else 0.0}
    if k < MIN_COLLECTIONS_RANDOM_EFFECTS:
        out["random_effects"] = (f"not estimable from {k} collections (needs >= {MIN_COLLECTIONS_RANDOM_EFFECTS}): the "
                                 "between-collection variance rests on K - 1 df")
        return out
    mean, se = float(res.mean_effect_re), float(res.sd_eff_w_re_hksj)
    t975 = float(stats.t.ppf(0.975, k - 1))
    out["random_effects"] = {"method": "DerSimonian-Laird tau², Hartung-Knapp-Sidik-Jonkman interval (t, K - 1 df)",
                             "mean_diff": mean, "se": se, "tau2": float(res.tau2), "ci95_low": mean - t975 * se,
                             "ci95_high": mean + t975 * se,
                             "p_value": float(2 * stats.t.sf(abs(mean) / se, k - 1)) if se > 0 else None}
    return out


def across_collections(tables: dict[str, np.ndarray], per_collection: dict[str, dict], margin: float) -> dict:
    """The average (with TOST within ``margin``) and heterogeneity of one arm over ``tables``' collections;
    ``per_collection``: each collection's comparison (its ``mean_diff`` and ``se``)."""
    names = sorted(tables)
    avg = average_difference([tables[n] for n in names])
    return {"collections": names, **avg, "tost_p": tost_p(avg["mean_diff"], avg["se"], avg["df"], margin),
            "equivalent_within": equivalent_within(avg["mean_diff"], avg["se"], avg["df"]),
            **heterogeneity([per_collection[n]["mean_diff"] for n in names], [per_collection[n]["se"] for n in names])}
