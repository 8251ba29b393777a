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
solution for the reduced balanced model; the record says which were set to 0. For the
mean's variance the seed factor is never pooled (``INFERENCE_POOLING`` says why). The
degrees of freedom are Satterthwaite's for that linear combination of mean squares,
evaluated at each kept factor mean square's upper bound (``DF_QUANTILE`` says why).
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


INFERENCE_POOLING = "keep-seed"
"""For the mean's variance the seed factor always stays in the model; only the query factor is pooled, on
REML's boundary. The seeds are the unit of replication: the grand mean's variance is ``E[MS_seed + MS_query -
MS_resid] / (S Q)`` whatever the estimate of the seed component, and dropping the seed term when its estimate
falls to 0 leaves out a seed part that is small but real often enough to matter (with 3 seeds and no query part
that rejected a true null 7.2-7.6% of the time; an F-test pooling rule at p > 0.25, used before, 8.5-9.8%).
The reported components are still REML's, with the seed component 0 on the boundary. ``scripts/calibrate_stats.py``
compares the rules on the grid; docs/statistics.md has the table."""

DF_QUANTILE = 0.25
"""Satterthwaite's df is evaluated with each kept factor's mean square at its upper 75% bound (``f / chi2_f(0.25)``).

The df is itself estimated from the mean squares, and with 3 seeds the seed mean square rests on 2 degrees
of freedom: when it comes out small by chance, the plug-in df comes out large, so the t quantile shrinks
exactly when the standard error is too small. Where the seed part dominated, the plain plug-in rejected a true
null up to 7.8-8.1% of the time with 3 seeds. Evaluating the df at an upper bound of each kept mean square (the
standard error itself is unchanged) holds every regime of the grid (3 and 5 seeds; 100, 225, 300 queries; seed
parts from 0 to dominant) within [2.5%, 7.5%]; the worst regime is in docs/statistics.md. With more seeds the
factor moves the df less.
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
    var_mu: np.ndarray  # variance of the mean used for inference
    df: np.ndarray  # its Satterthwaite degrees of freedom (see DF_QUANTILE)


def _pool(ss, f, ss_e, f_e, rule: str | float):
    """Which of the seed (0) and query (1) factors stay in the model, and the pooled residual ``(ms, df)``.

    ``rule`` "reml": REML's boundary (pool when the factor's mean square is below the residual one);
    "keep-seed": the same for the query factor, the seed factor always kept; a number ``p``: pool when
    the factor's F-test has p above it. The factor with the smaller mean square is pooled first, and
    the test is repeated against the pooled residual (tree order).
    """
    if rule == "keep-seed":
        ms_e = ss_e / f_e if f_e > 0 else np.zeros_like(ss_e)
        keep_q = (ss[1] / max(f[1], 1.0) >= ms_e) & (f[1] > 0)
        pooled_f = f_e + np.where(keep_q, 0.0, f[1])
        pooled_ss = ss_e + np.where(keep_q, 0.0, ss[1])
        ms_p = np.divide(pooled_ss, pooled_f, out=np.zeros_like(pooled_ss), where=pooled_f > 0)
        return [np.broadcast_to(f[0] > 0, ss_e.shape).copy(), keep_q], ms_p, pooled_f
    rule_p = None if rule == "reml" else float(rule)
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


def fit_crossed(d: np.ndarray, pooling: str | float = INFERENCE_POOLING,
                df_quantile: float | None = DF_QUANTILE) -> CrossedFit:
    """Fit ``d (..., S, Q)``: REML components, and the mean's variance and df. ``pooling`` and ``df_quantile``
    None (the plain plug-in Satterthwaite df) are the calibration's comparisons; see their constants."""
    d = np.asarray(d, dtype=float)
    s, q = d.shape[-2:]
    grand = d.mean((-2, -1))
    row, col = d.mean(-1), d.mean(-2)
    ss = [q * ((row - grand[..., None]) ** 2).sum(-1), s * ((col - grand[..., None]) ** 2).sum(-1)]
    ss_e = ((d - row[..., :, None] - col[..., None, :] + grand[..., None, None]) ** 2).sum((-2, -1))
    return _fit_from_squares(ss, ss_e, s, q, grand, pooling, df_quantile)


def _fit_from_squares(ss: list, ss_e: np.ndarray, s: int, q: int, grand: np.ndarray, pooling: str | float,
                      df_quantile: float | None) -> CrossedFit:
    """The fit from the sums of squares of the seed and query factors and the residual."""
    f = [s - 1.0, q - 1.0]
    f_e = (s - 1.0) * (q - 1.0)
    # REML components (reported)
    keep, ms_e, _ = _pool(ss, f, ss_e, f_e, "reml")
    comp = [np.where(keep[i], (ss[i] / max(f[i], 1.0) - ms_e) / (q, s)[i], 0.0) for i in range(2)]
    # inference: Var(mu) = var_seed/S + var_query/Q + var_resid/(SQ), a combination of mean squares
    keep_i, ms_e_i, f_e_i = _pool(ss, f, ss_e, f_e, pooling)
    ms = [ss[i] / max(f[i], 1.0) for i in range(2)]
    resid_coef = 1.0 - keep_i[0].astype(float) - keep_i[1].astype(float)
    total = sum(np.where(keep_i[i], ms[i], 0.0) for i in range(2)) + resid_coef * ms_e_i
    up = [_upper_factor(f[i], df_quantile) * ms[i] for i in range(2)]  # df at the mean squares' upper bounds
    total_df = sum(np.where(keep_i[i], up[i], 0.0) for i in range(2)) + resid_coef * ms_e_i
    denom = sum(np.where(keep_i[i], up[i] ** 2 / max(f[i], 1.0), 0.0) for i in range(2))
    denom = denom + np.divide((resid_coef * ms_e_i) ** 2, f_e_i, out=np.zeros_like(ms_e_i), where=f_e_i > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denom > 0, total_df**2 / denom, np.inf)
    return CrossedFit(grand, np.maximum(comp[0], 0.0), np.maximum(comp[1], 0.0), ms_e, ~keep[0] & (s > 1),
                      ~keep[1] & (q > 1), np.maximum(total, 0.0) / (s * q), df)


def _upper_factor(f: float, quantile: float | None) -> float:
    """``f / chi2_f(quantile)``: a mean square on ``f`` df times this is its upper ``1 - quantile`` bound."""
    if quantile is None or f < 1:
        return 1.0
    return float(f / stats.chi2.ppf(quantile, f))


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
    def enough(se: float, df: float) -> bool:
        return (stats.t.ppf(0.975, df) + stats.t.ppf(power, df)) * se <= abs(delta)

    return _fewest_seeds(var_seed, var_query, var_resid, queries, enough, max_seeds)


def seeds_for_equivalence(var_seed: float, var_query: float, var_resid: float, queries: int, margin: float,
                          power: float = 0.8, true_diff: float = 0.0, max_seeds: int = 1000) -> int | None:
    """The fewest seeds whose TOST shows equivalence within ``+-margin`` at 5% with ``power``, when the true
    difference is ``true_diff`` (0: the arms are the same). The usual approximation (Chow and Liu, *Design and
    Analysis of Bioavailability and Bioequivalence Studies*, ch. 5): ``margin - |true_diff| >= (t_.95 + t_b) SE``
    with ``t_b`` at ``(1 + power) / 2`` when ``true_diff`` is 0 (both one-sided tests must pass) and at ``power``
    otherwise. None when ``max_seeds`` do not, or when ``|true_diff| >= margin``."""
    room = margin - abs(true_diff)
    if room <= 0:
        return None
    beta_q = (1 + power) / 2 if true_diff == 0 else power

    def enough(se: float, df: float) -> bool:
        return (stats.t.ppf(0.95, df) + stats.t.ppf(beta_q, df)) * se <= room

    return _fewest_seeds(var_seed, var_query, var_resid, queries, enough, max_seeds)


def _fewest_seeds(var_seed: float, var_query: float, var_resid: float, queries: int, enough, max_seeds: int
                  ) -> int | None:
    """The smallest S >= 2 at which ``enough(SE, df)`` holds for a study of S seeds x ``queries``, or None."""
    for s in range(2, max_seeds + 1):
        var_mu, df = design_df(s, queries, var_seed, var_query, var_resid)
        if var_mu <= 0 or enough(float(np.sqrt(var_mu)), df):
            return s
    return None


def design_df(seeds: int, queries: int, var_seed: float, var_query: float, var_resid: float) -> tuple[float, float]:
    """``(Var(mu_hat), df)`` a study of this size would fit at these true components: the expected mean squares
    through the same Satterthwaite rule as :func:`fit_crossed` (planning and the expected smallest difference)."""
    ms = np.array([[queries * var_seed + var_resid], [seeds * var_query + var_resid], [var_resid]])
    ss_scale = np.array([seeds - 1.0, queries - 1.0, (seeds - 1.0) * (queries - 1.0)])
    # a table whose mean squares are exactly the expected ones: build it from the sums of squares directly
    fit = _fit_from_squares([ms[0] * ss_scale[0], ms[1] * ss_scale[1]], ms[2] * ss_scale[2], seeds, queries,
                            np.zeros(1), INFERENCE_POOLING, DF_QUANTILE)
    return float(fit.var_mu[0]), float(fit.df[0])
