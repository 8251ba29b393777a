"""Simulated studies: does a method's 5% test reject a true null 5% of the time, and with what power?

Studies of ``S`` seeds x ``Q`` queries are drawn from the crossed model of
:mod:`maw_bench.evaluation.crossed` with given standard deviations of the seed, query
and residual parts, under the null (``mu = 0``) or an alternative. Each method's
rejection rate at 5% is counted, over the named :data:`REGIMES` and over :func:`grid`
(3 and 5 seeds; 100, 225 and 300 queries; no, small and large query parts; seed parts
from none through small-but-real to dominant). ``scripts/calibrate_stats.py`` prints and
writes both; ``tests/test_statistics.py`` holds the primary method to [2.5%, 7.5%] over
both, and shows the bootstrap with normal quantiles outside it where seeds dominate.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from maw_bench.evaluation.crossed import fit_crossed, seed_level_t
from maw_bench.evaluation.crossed import p_values as crossed_p

# (sd of seed, sd of query, sd of residual) of the per-query differences of an arm against the reference.
# The query and residual parts are of the size seen for nDCG@10 differences between two fine-tuned arms on
# SciFact's 300 test queries; the seed part is what varies between regimes.
REGIMES: dict[str, tuple[float, float, float]] = {
    "seed sd 0.005": (0.005, 0.10, 0.08),
    "seed sd 0.02": (0.02, 0.10, 0.08),
    "seed sd 0.03": (0.03, 0.10, 0.08),
    "seeds only": (0.03, 0.0, 0.0),
    "queries only": (0.0, 0.10, 0.0),
    "residual only": (0.0, 0.0, 0.10),
    "small seed, small residual": (0.001, 0.05, 0.03),
}
METHODS = ("crossed", "crossed-plain-df", "crossed-reml-boundary", "crossed-pool-0.25", "bootstrap-normal", "seed-t")
FAST_METHODS = ("crossed", "crossed-plain-df", "crossed-reml-boundary", "crossed-pool-0.25")

GRID_SEEDS = (3, 5)
GRID_QUERIES = (100, 225, 300)
GRID_QUERY_SD = (0.0, 0.03, 0.10)
GRID_SEED_RATIO = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 20.0, 50.0)
"""``Q var_seed / var_resid``: the seed part's weight in the seed mean square against the residual's (its
expected F is 1 + this). 1.5-2 is the small-but-real part at which an F-test pooling rule misbehaved."""
GRID_RESID_SD = 0.08


def grid() -> list[tuple[int, int, str, tuple[float, float, float]]]:
    """``(seeds, queries, regime name, (sd seed, sd query, sd residual))`` over the calibration grid."""
    rows = []
    for s in GRID_SEEDS:
        for q in GRID_QUERIES:
            for sd_q in GRID_QUERY_SD:
                for ratio in GRID_SEED_RATIO:
                    sd_s = float(np.sqrt(ratio * GRID_RESID_SD**2 / q))
                    rows.append((s, q, f"query sd {sd_q:g}, seed ratio {ratio:g}", (sd_s, sd_q, GRID_RESID_SD)))
    return rows


def simulate(n: int, seeds: int, queries: int, sd: tuple[float, float, float], mu: float,
             rng: np.random.Generator) -> np.ndarray:
    """``(n, S, Q)`` tables ``mu + a_s + b_q + e_sq``."""
    sd_s, sd_q, sd_e = sd
    return (mu + sd_s * rng.standard_normal((n, seeds, 1)) + sd_q * rng.standard_normal((n, 1, queries))
            + sd_e * rng.standard_normal((n, seeds, queries)))


def bootstrap_normal_p(d: np.ndarray, n_boot: int, rng: np.random.Generator) -> float:
    """The pigeonhole bootstrap's standard error with a normal p-value (the sensitivity column)."""
    s, q = d.shape
    ws = rng.multinomial(s, np.full(s, 1.0 / s), size=n_boot).astype(float)
    wq = rng.multinomial(q, np.full(q, 1.0 / q), size=n_boot).astype(float)
    boot = np.einsum("bs,sq,bq->b", ws, d, wq) / (s * q)
    se = boot.std(ddof=1)
    return float(2 * stats.norm.sf(abs(d.mean()) / se)) if se > 0 else 1.0


def method_p_values(data: np.ndarray, method: str, rng: np.random.Generator, n_boot: int = 400) -> np.ndarray:
    """p-values of each simulated ``(n, S, Q)`` study under ``method``."""
    if method == "crossed":
        return crossed_p(fit_crossed(data))
    if method == "crossed-plain-df":  # Satterthwaite's df at the plain plug-in mean squares
        return crossed_p(fit_crossed(data, df_quantile=None))
    if method == "crossed-reml-boundary":  # the seed factor pooled on REML's boundary too (plain df)
        return crossed_p(fit_crossed(data, pooling="reml", df_quantile=None))
    if method == "crossed-pool-0.25":  # the F-test pooling rule used before (plain df)
        return crossed_p(fit_crossed(data, pooling=0.25, df_quantile=None))
    if method == "bootstrap-normal":
        return np.array([bootstrap_normal_p(d, n_boot, rng) for d in data])
    if method == "seed-t":
        return np.array([1.0 if (p := seed_level_t(d)["p_value"]) is None else p for d in data])
    raise ValueError(f"unknown method {method!r}")


def expected_min_detectable(seeds: int, queries: int, sd: tuple[float, float, float]) -> float:
    """The crossed method's smallest detectable difference (80% power, 5%) at the true components."""
    from maw_bench.evaluation.crossed import design_df

    var_mu, df = design_df(seeds, queries, *(x**2 for x in sd))
    return float((stats.t.ppf(0.975, df) + stats.t.ppf(0.80, df)) * np.sqrt(var_mu))


def equivalence_rate(seeds: int, queries: int, sd: tuple[float, float, float], n_sims: int, margin: float,
                     mu: float, seed: int = 0) -> float:
    """Share of ``n_sims`` simulated studies (true difference ``mu``) that TOST on the crossed fit declares
    equivalent within ``margin`` at 5%: at ``mu = margin`` a calibrated test does so at most 5% of the time."""
    from maw_bench.evaluation.crossed import tost_p

    rng = np.random.default_rng(seed)
    fit = fit_crossed(simulate(n_sims, seeds, queries, sd, mu, rng))
    se = np.sqrt(fit.var_mu)
    return float(np.mean([tost_p(float(m), float(e), float(f), margin) < 0.05
                          for m, e, f in zip(fit.mean, se, fit.df)]))


def rejection_rates(seeds: int, queries: int, sd: tuple[float, float, float], n_sims: int, seed: int = 0,
                    methods: tuple[str, ...] = METHODS, mu: float = 0.0, n_boot: int = 400) -> dict[str, float]:
    """Share of ``n_sims`` simulated studies each method rejects at 5% (under ``mu``)."""
    rng = np.random.default_rng(seed)
    data = simulate(n_sims, seeds, queries, sd, mu, rng)
    return {m: float(np.mean(method_p_values(data, m, rng, n_boot) < 0.05)) for m in methods}


def across_rates(seeds: int, queries: tuple[int, ...], sd_seed: float, rho: float, sd_query: float, sd_resid: float,
                 n_sims: int, seed: int = 0) -> dict[str, float]:
    """Null studies over ``len(queries)`` collections that share ``seeds`` (seed effects correlated ``rho`` between
    collections): the share the cross-collection average rejects at 5%, and the share a naive average would (the
    collections' SEs combined as if independent, normal quantiles)."""
    from maw_bench.evaluation.across import average_difference
    from maw_bench.evaluation.crossed import crossed_estimate

    rng = np.random.default_rng(seed)
    k = len(queries)
    cov = sd_seed**2 * (np.full((k, k), rho) + (1 - rho) * np.eye(k))
    chol = np.linalg.cholesky(cov + 1e-18 * np.eye(k))
    ours = naive = 0
    for _ in range(n_sims):
        a = chol @ rng.standard_normal((k, seeds))
        tables = [a[i][:, None] + sd_query * rng.standard_normal((1, q)) + sd_resid * rng.standard_normal((seeds, q))
                  for i, q in enumerate(queries)]
        ours += average_difference(tables)["p_value"] < 0.05
        est = [crossed_estimate(t) for t in tables]
        se = float(np.sqrt(sum(e.se**2 for e in est))) / k
        naive += 2 * stats.norm.sf(abs(np.mean([e.mean_diff for e in est])) / se) < 0.05
    return {"average": ours / n_sims, "independent-normal": naive / n_sims}
