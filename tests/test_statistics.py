"""The study's primary method: a crossed random-effects model (REML components, Satterthwaite df), calibrated."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from maw_bench.evaluation.calibration import REGIMES, rejection_rates
from maw_bench.evaluation.crossed import crossed_estimate, fit_crossed


def _design(seed: int, s: int, q: int, sd: tuple[float, float, float], mu: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return mu + sd[0] * rng.standard_normal((s, 1)) + sd[1] * rng.standard_normal((1, q)) + sd[2] * rng.standard_normal((s, q))


@pytest.mark.parametrize("sd", [(0.02, 0.1, 0.05), (0.0, 0.1, 0.05), (0.03, 0.0, 0.05), (0.01, 0.08, 0.0001)])
def test_variance_components_equal_statsmodels_mixedlm_on_a_balanced_crossed_design(sd):
    import pandas as pd
    import statsmodels.formula.api as smf

    d = _design(7, 4, 40, sd)
    frame = pd.DataFrame([(s, q, d[s, q]) for s in range(4) for q in range(40)], columns=["seed", "query", "d"])
    frame["group"] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.mixedlm("d ~ 1", frame, groups="group", re_formula="0",
                          vc_formula={"seed": "0 + C(seed)", "query": "0 + C(query)"}).fit(reml=True)
    theirs = dict(zip(fit.model.exog_vc.names, fit.vcomp))
    ours = fit_crossed(d)
    assert float(ours.var_seed) == pytest.approx(theirs["seed"], abs=1e-4)
    assert float(ours.var_query) == pytest.approx(theirs["query"], abs=1e-4)
    assert float(ours.var_resid) == pytest.approx(fit.scale, abs=1e-4)
    if not (ours.seed_zero or ours.query_zero):  # the pooling rule did not act: the same standard error
        assert float(np.sqrt(ours.var_mu)) == pytest.approx(fit.bse["Intercept"], rel=1e-3)


def test_one_seed_is_a_paired_t_test_over_queries_and_says_so():
    d = _design(3, 1, 50, (0.0, 0.1, 0.05))
    est = crossed_estimate(d)
    ref = stats.ttest_1samp(d[0], 0.0)
    assert est.method.startswith("paired t over queries") and est.df == 49
    assert est.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_the_smallest_detectable_difference_uses_t_quantiles_at_the_fitted_df():
    est = crossed_estimate(_design(4, 3, 300, (0.02, 0.1, 0.08)))
    t = stats.t.ppf(0.975, est.df) + stats.t.ppf(0.80, est.df)
    assert est.df < 10 and est.min_detectable == pytest.approx(t * est.se, rel=1e-9)
    assert est.min_detectable > 2.80 * est.se  # the z rule understates it with few degrees of freedom


def test_a_component_below_zero_is_set_to_zero_and_named():
    rng = np.random.default_rng(0)
    d = 0.1 * rng.standard_normal((3, 200))  # no seed or query part: REML puts one on the boundary often
    zeros = [crossed_estimate(0.1 * rng.standard_normal((3, 200))).set_to_zero for _ in range(20)]
    assert any(zeros) and all(set(z) <= {"seed", "query"} for z in zeros)
    assert crossed_estimate(d).var_seed >= 0


SEED_DOMINATED = ("seed sd 0.02", "seed sd 0.03")


@pytest.mark.parametrize("seeds", [3, 5])
def test_the_primary_method_rejects_a_true_null_about_5_percent_in_every_regime(seeds):
    """2,000 simulated null studies of S seeds x 300 queries per regime (scripts/calibrate_stats.py prints them).

    With 5 seeds every regime is within [2.5%, 7.5%]. With 3 seeds the seed part rests on 2 degrees of
    freedom: where it dominates, Satterthwaite's t rejects 7-8% (a parametric bootstrap-t did worse, 8.7-9.3%),
    so those two regimes are held to 8.5% and docs/statistics.md says so.
    """
    for name, sd in REGIMES.items():
        rate = rejection_rates(seeds, 300, sd, 2000, seed=11, methods=("crossed",))["crossed"]
        high = 0.085 if seeds == 3 and name in SEED_DOMINATED else 0.075
        assert 0.025 <= rate <= high, (name, rate)


@pytest.mark.parametrize("seeds, queries", [(3, 225), (5, 300)])
def test_equivalence_at_the_margin_is_declared_at_most_about_5_percent_of_the_time(seeds, queries):
    """TOST on the crossed fit, with the true difference exactly at the margin (+ or -): 2,000 simulated studies per
    regime declare equivalence at most 7.5% of the time (the primary test's band; about 5% where the SE is small
    against the margin, less where it is large), and with no true difference it finds equivalence where the
    design can (the power side: the test is not just conservative)."""
    from maw_bench.evaluation.calibration import equivalence_rate
    from maw_bench.evaluation.crossed import equivalent_within, tost_p

    margin = 0.01
    for name, sd in REGIMES.items():
        for mu in (margin, -margin):
            rate = equivalence_rate(seeds, queries, sd, 2000, margin, mu, seed=21)
            assert rate <= 0.075, (name, mu, rate)
    assert equivalence_rate(5, 300, REGIMES["small seed, small residual"], 500, margin, 0.0, seed=22) > 0.8  # about 0.90 expected
    # the smallest equivalent margin is where TOST's p crosses 5%
    m = equivalent_within(0.002, 0.003, 40.0)
    assert tost_p(0.002, 0.003, 40.0, m) == pytest.approx(0.05, abs=1e-9)
    assert tost_p(0.002, 0.003, 40.0, m * 1.01) < 0.05 < tost_p(0.002, 0.003, 40.0, m * 0.99)


def test_the_bootstrap_with_normal_quantiles_is_outside_the_band_when_seeds_dominate():
    rate = rejection_rates(3, 300, REGIMES["seeds only"], 400, seed=12, methods=("bootstrap-normal",), n_boot=300)
    assert rate["bootstrap-normal"] > 0.10  # the old rule: about 25%
