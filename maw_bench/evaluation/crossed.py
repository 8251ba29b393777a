"""Arm minus reference over seeds *and* queries: a crossed random-effects model, REML, Satterthwaite df.

A study scores every arm with ``S`` seeds on the same ``Q`` queries, so the per-query
differences of an arm against the reference of the same seed vary along two crossed
random factors::

    d[s, q] = mu + a_s + b_q + e_sq,   a_s ~ N(0, var_seed), b_q ~ N(0, var_query), e_sq ~ N(0, var_resid)

The question is ``mu``. With few seeds its standard error rests on few degrees of
freedom, so intervals and p-values use Student's t with Satterthwaite's degrees of
freedom, not the normal quantiles (with 3 seeds and a seed variance that matters, the
normal rule rejected a true null 10-25% of the time in simulation; see
``scripts/calibrate_stats.py``).

The design is balanced (every seed scores every query; a missing one is an error
upstream), where the REML estimates have a closed form: the ANOVA mean squares

    MS_seed  = Q * sum_s (d_s. - d..)^2 / (S - 1)
    MS_query = S * sum_q (d_.q - d..)^2 / (Q - 1)
    MS_resid = sum (d_sq - d_s. - d_.q + d..)^2 / ((S - 1)(Q - 1))

give ``var_resid = MS_resid``, ``var_seed = (MS_seed - MS_resid) / Q`` and ``var_query =
(MS_query - MS_resid) / S``, and ``Var(mu_hat) = (MS_seed + MS_query - MS_resid) / (S Q)``.
A component estimated below 0 is set to 0, as REML does on the boundary, and the model
is refitted without it (its sum of squares pooled into the residual), which is REML's
solution for the reduced balanced model; the record says which were set to 0. The
degrees of freedom are Satterthwaite's for that linear combination of mean squares.
A test checks the components against statsmodels' ``MixedLM`` (crossed through
``vc_formula``, REML) to 1e-4.

References: F. E. Satterthwaite, "An approximate distribution of estimates of variance
components", Biometrics Bulletin 2(6), 1946, 110-114. S. R. Searle, G. Casella and
C. E. McCulloch, *Variance Components*, Wiley 1992, ch. 4 (balanced data, REML on the
boundary). For the seed-to-seed variance of neural models: X. Bouthillier et al.,
"Accounting for variance in machine learning benchmarks", MLSys 2021.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats


@dataclass
class CrossedEstimate:
    """``mu`` with its t interval, p-value and the smallest difference the design detects."""

    method: str  # "crossed REML (Satterthwaite)" or, with one seed, "paired t over queries"
    seeds: int
    queries: int
    mean_diff: float
    se: float
    df: float
    ci95_low: float
    ci95_high: float
    p_value: float
    min_detectable: float  # |difference| detected with 80% power at the 5% level (t quantiles at df)
    var_seed: float
    var_query: float
    var_resid: float
    set_to_zero: list[str] = field(default_factory=list)  # components REML put on the boundary

    def to_dict(self) -> dict:
        return asdict(self)


POOL_P = 0.25
"""A component whose F-test against the residual has p above this is pooled into the residual for inference.

REML alone pools a component only when its estimate falls below 0 (F < 1), so the seed
components it keeps are the large ones: with no true seed or query variance the 5% test
rejected 3.0% (3 seeds) and 2.9% (5 seeds) of null studies. Pooling at p > 0.25, the
"sometimes pool" level of Bozivich, Bancroft and Hartley (1956), gives 3.5% and 3.8% there
and changes no other regime by more than 0.1 point (``scripts/calibrate_stats.py``;
the table is in docs/statistics.md).
"""


@dataclass
class CrossedFit:
    """Arrays over a leading batch axis (one entry per table): what :func:`fit_crossed` estimates."""

    mean: np.ndarray
    var_seed: np.ndarray  # REML components (set to 0 on the boundary)
    var_query: np.ndarray
    var_resid: np.ndarray
    seed_zero: np.ndarray  # bool: REML set the seed component to 0
    query_zero: np.ndarray
    var_mu: np.ndarray  # variance of the mean used for inference (after the pooling rule)
    df: np.ndarray  # its Satterthwaite degrees of freedom


def _pool(ss, f, ss_e, f_e, rule_p: float | None):
    """Which of the seed (0) and query (1) factors stay in the model, and the pooled residual ``(ms, df)``.

    ``rule_p`` None: REML's boundary (pool when the factor's mean square is below the residual one);
    else pool when the factor's F-test has p above ``rule_p``. The factor with the smaller mean
    square is pooled first, and the test is repeated against the pooled residual (tree order).
    """
    keep = [f[0] > 0, f[1] > 0]
    keep = [np.broadcast_to(k, ss_e.shape).copy() for k in keep]
    for _ in range(2):
        pooled_ss = ss_e + sum(np.where(keep[i], 0.0, ss[i]) for i in range(2))
        pooled_f = f_e + sum(np.where(keep[i], 0.0, f[i]) for i in range(2))
        ms_e = np.divide(pooled_ss, pooled_f, out=np.zeros_like(pooled_ss), where=pooled_f > 0)
        ms = [np.divide(ss[i], f[i]) if f[i] > 0 else np.zeros_like(ss_e) for i in range(2)]
        if rule_p is None:
            out = [keep[i] & (ms[i] < ms_e) for i in range(2)]
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                pv = [stats.f.sf(ms[i] / ms_e, f[i], pooled_f) if f[i] > 0 else np.ones_like(ss_e) for i in range(2)]
            out = [keep[i] & ((ms_e == 0) & (ms[i] == 0) | (pv[i] > rule_p)) for i in range(2)]
        both = out[0] & out[1]
        first_seed = ms[0] <= ms[1]
        drop_seed = out[0] & (~both | first_seed)
        drop_query = out[1] & (~both | ~first_seed)
        if not (drop_seed.any() or drop_query.any()):
            break
        keep = [keep[0] & ~drop_seed, keep[1] & ~drop_query]
    pooled_ss = ss_e + sum(np.where(keep[i], 0.0, ss[i]) for i in range(2))
    pooled_f = f_e + sum(np.where(keep[i], 0.0, f[i]) for i in range(2))
    ms_e = np.divide(pooled_ss, pooled_f, out=np.zeros_like(pooled_ss), where=pooled_f > 0)
    return keep, ms_e, pooled_f


def fit_crossed(d: np.ndarray, pool_p: float | None = POOL_P) -> CrossedFit:
    """Fit ``d (..., S, Q)``: REML components, and the mean's variance and df after the pooling rule."""
    d = np.asarray(d, dtype=float)
    s, q = d.shape[-2:]
    grand = d.mean((-2, -1))
    row, col = d.mean(-1), d.mean(-2)
    ss = [q * ((row - grand[..., None]) ** 2).sum(-1), s * ((col - grand[..., None]) ** 2).sum(-1)]
    ss_e = ((d - row[..., :, None] - col[..., None, :] + grand[..., None, None]) ** 2).sum((-2, -1))
    f = [s - 1.0, q - 1.0]
    f_e = (s - 1.0) * (q - 1.0)
    # REML components (reported)
    keep, ms_e, _ = _pool(ss, f, ss_e, f_e, None)
    comp = [np.where(keep[i], (ss[i] / max(f[i], 1.0) - ms_e) / (q, s)[i], 0.0) for i in range(2)]
    # inference: Var(mu) = var_seed/S + var_query/Q + var_resid/(SQ), a combination of mean squares
    keep_i, ms_e_i, f_e_i = _pool(ss, f, ss_e, f_e, pool_p)
    ms = [ss[i] / max(f[i], 1.0) for i in range(2)]
    resid_coef = 1.0 - keep_i[0].astype(float) - keep_i[1].astype(float)
    total = sum(np.where(keep_i[i], ms[i], 0.0) for i in range(2)) + resid_coef * ms_e_i
    denom = sum(np.where(keep_i[i], ms[i] ** 2 / max(f[i], 1.0), 0.0) for i in range(2))
    denom = denom + np.divide((resid_coef * ms_e_i) ** 2, f_e_i, out=np.zeros_like(ms_e_i), where=f_e_i > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denom > 0, total**2 / denom, np.inf)
    return CrossedFit(grand, np.maximum(comp[0], 0.0), np.maximum(comp[1], 0.0), ms_e, ~keep[0] & (s > 1),
                      ~keep[1] & (q > 1), np.maximum(total, 0.0) / (s * q), df)


def p_values(fit: CrossedFit) -> np.ndarray:
    """Two-sided p of ``mean = 0`` from Student's t at the fitted df (1 where the variance is 0 and mean 0)."""
    se = np.sqrt(fit.var_mu)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, np.abs(fit.mean) / se, np.where(fit.mean == 0, 0.0, np.inf))
    return np.minimum(1.0, 2 * stats.t.sf(t, fit.df))


def crossed_estimate(d: np.ndarray) -> CrossedEstimate:
    """The primary estimate for a complete ``(S, Q)`` table of per-query differences (S >= 1, Q >= 2)."""
    d = np.asarray(d, dtype=float)
    s, q = d.shape
    mean = float(d.mean())
    if s == 1:  # one seed: a paired t-test over queries, and it says so
        var_q = float(d.var(ddof=1)) if q > 1 else 0.0
        return _finish("paired t over queries (one seed)", s, q, mean, var_q / q, q - 1.0, 0.0, var_q, 0.0, [])
    fit = fit_crossed(d)
    zero = [name for name, z in (("seed", fit.seed_zero), ("query", fit.query_zero)) if bool(z)]
    return _finish("crossed random effects (REML components; Satterthwaite df)", s, q, mean, float(fit.var_mu),
                   float(fit.df), float(fit.var_seed), float(fit.var_query), float(fit.var_resid), zero)


def _finish(method: str, s: int, q: int, mean: float, var_mu: float, df: float, v_seed: float, v_query: float,
            v_resid: float, zero: list[str]) -> CrossedEstimate:
    se = float(np.sqrt(var_mu))
    if se == 0 or not np.isfinite(df) and se == 0:
        p = 1.0 if mean == 0 else 0.0
        return CrossedEstimate(method, s, q, mean, 0.0, df, mean, mean, p, 0.0, v_seed, v_query, v_resid, zero)
    t975 = float(stats.t.ppf(0.975, df))
    t80 = float(stats.t.ppf(0.80, df))
    p = float(2 * stats.t.sf(abs(mean) / se, df))
    return CrossedEstimate(method, s, q, mean, se, float(df), mean - t975 * se, mean + t975 * se, min(1.0, p),
                           (t975 + t80) * se, v_seed, v_query, v_resid, zero)


def tost_p(mean: float, se: float, df: float, margin: float) -> float:
    """Equivalence: two one-sided t-tests (Schuirmann's TOST) of ``-margin < difference < margin`` on the same
    estimate, SE and df as the difference test; p is the larger of the two one-sided p's (small: equivalent).
    A non-significant difference is not this: it can come from too few seeds or queries to see one."""
    if margin <= 0:
        return 1.0
    if se == 0:
        return 0.0 if abs(mean) < margin else 1.0
    below = float(stats.t.sf((mean + margin) / se, df))  # H0: difference <= -margin
    above = float(stats.t.cdf((mean - margin) / se, df))  # H0: difference >= +margin
    return min(1.0, max(below, above))


def equivalent_within(mean: float, se: float, df: float, alpha: float = 0.05) -> float:
    """The smallest margin at which TOST shows equivalence at ``alpha``: ``|mean| + t_(1-alpha, df) SE``, the
    farther end of the ``1 - 2 alpha`` (90%) interval."""
    return abs(mean) + (float(stats.t.ppf(1 - alpha, df)) * se if se > 0 else 0.0)


def seed_level_t(d: np.ndarray) -> dict:
    """Sensitivity: a paired t-test over the per-seed means (df = S - 1); None-valued with one seed."""
    means = np.asarray(d, dtype=float).mean(1)
    s = len(means)
    if s < 2:
        return {"p_value": None, "ci95_low": None, "ci95_high": None, "df": None}
    se = float(means.std(ddof=1) / np.sqrt(s))
    m = float(means.mean())
    if se == 0:
        return {"p_value": 1.0 if m == 0 else 0.0, "ci95_low": m, "ci95_high": m, "df": s - 1}
    t = float(stats.t.ppf(0.975, s - 1))
    return {"p_value": float(2 * stats.t.sf(abs(m) / se, s - 1)), "ci95_low": m - t * se, "ci95_high": m + t * se,
            "df": s - 1}


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error), in the order given (statsmodels' ``multipletests``)."""
    from statsmodels.stats.multitest import multipletests

    if not p_values:
        return []
    return [float(x) for x in multipletests(p_values, method="holm")[1]]


def seeds_needed(var_seed: float, var_query: float, var_resid: float, queries: int, delta: float,
                 power: float = 0.8, max_seeds: int = 1000) -> int | None:
    """The fewest seeds (with ``queries`` queries) whose t-test detects ``delta`` at ``power`` and 5%.

    Uses the same model: ``Var(mu) = var_seed/S + var_query/Q + var_resid/(S Q)`` and
    Satterthwaite's df of the mean squares a study of that size would have. None when
    even ``max_seeds`` seeds do not (the query variance alone can bound what seeds buy).
    """
    q = queries
    for s in range(2, max_seeds + 1):
        ms_s = q * var_seed + var_resid
        ms_q = s * var_query + var_resid
        ms_e = var_resid
        var_mu = (ms_s + ms_q - ms_e) / (s * q)
        denom = ms_s**2 / (s - 1) + ms_q**2 / (q - 1) + ms_e**2 / ((s - 1) * (q - 1))
        df = (var_mu * s * q) ** 2 / denom if denom > 0 else float("inf")
        se = np.sqrt(var_mu)
        if se == 0:
            return s
        if (stats.t.ppf(0.975, df) + stats.t.ppf(power, df)) * se <= abs(delta):
            return s
    return None
