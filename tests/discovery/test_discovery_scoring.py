"""Sharpe, PSR, expected max Sharpe, DSR, the backtest score, composite score and activation.

PSR and DSR are checked against numbers worked out here from the formulas (Bailey & López de
Prado 2012, 2014) with plain arithmetic, and against the DSR paper's published example.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaloop.core.errors import AlphaloopError
from alphaloop.discovery.errors import DiscoveryError, DiscoveryInputError, InsufficientDataError
from alphaloop.discovery.scoring import (
    EULER_GAMMA,
    ScoreBreakdown,
    activation_decision,
    backtest_score,
    composite_score,
    deflated_sharpe_ratio,
    dsr_from_stats,
    expected_max_sharpe,
    max_drawdown,
    probabilistic_sharpe_ratio,
    psr_from_stats,
    return_stats,
    sharpe_ratio,
)

PHI = NormalDist().cdf
PHI_INV = NormalDist().inv_cdf

# A small explicit series: mean 0.01, deviations (-0.02, -0.01, -0.01, 0, 0.04).
RETURNS = [-0.01, 0.0, 0.0, 0.01, 0.05]


def hand_moments():
    """Worked by hand: Σd² = (4 + 1 + 1 + 0 + 16)e-4 = 22e-4, Σd³ = (-8 - 1 - 1 + 0 + 64)e-6 = 54e-6,
    Σd⁴ = (16 + 1 + 1 + 0 + 256)e-8 = 274e-8, n = 5."""
    n, mean = 5, 0.01
    sample_var = 22e-4 / (n - 1)  # 5.5e-4
    sr = mean / math.sqrt(sample_var)  # sqrt(1/5.5) = 0.426401...
    m2, m3, m4 = 22e-4 / n, 54e-6 / n, 274e-8 / n
    skew = m3 / m2**1.5  # 1.170159...
    kurt = m4 / m2**2  # 54.8 / 19.36 = 2.830579...
    return n, sr, skew, kurt


def hand_psr(sr, n, skew, kurt, sr_star):
    return PHI((sr - sr_star) * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))


def test_moments_match_hand_computation():
    n, sr, skew, kurt = hand_moments()
    s = return_stats(RETURNS)
    assert s.n_obs == n and s.mean == pytest.approx(0.01)
    assert s.sharpe == pytest.approx(sr, rel=1e-12) and sr == pytest.approx(0.4264014, abs=1e-7)
    assert s.skewness == pytest.approx(skew, rel=1e-12) and skew == pytest.approx(1.1701587, abs=1e-7)
    assert s.kurtosis == pytest.approx(kurt, rel=1e-12) and kurt == pytest.approx(2.8305785, abs=1e-7)
    assert sharpe_ratio(RETURNS) == pytest.approx(sr)
    assert sharpe_ratio(RETURNS, periods_per_year=252) == pytest.approx(sr * math.sqrt(252))


def test_moments_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    x = np.random.default_rng(3).standard_t(5, 500) * 0.01
    s = return_stats(x)
    assert s.skewness == pytest.approx(stats.skew(x), rel=1e-10)
    assert s.kurtosis == pytest.approx(stats.kurtosis(x, fisher=False), rel=1e-10)
    assert s.std == pytest.approx(np.std(x, ddof=1), rel=1e-12)


def test_psr_hand_computed():
    n, sr, skew, kurt = hand_moments()
    # denominator: 1 − 1.170159·0.426401 + (1.830579/4)·0.181818 = 0.584251; z = 0.852803/0.764363 = 1.11570
    expected = hand_psr(sr, n, skew, kurt, 0.0)
    assert expected == pytest.approx(0.86773, abs=1e-5)
    assert probabilistic_sharpe_ratio(RETURNS) == pytest.approx(expected, rel=1e-12)
    assert probabilistic_sharpe_ratio(RETURNS, 0.1) == pytest.approx(hand_psr(sr, n, skew, kurt, 0.1), rel=1e-12)
    assert psr_from_stats(sr, n, skewness=skew, kurtosis=kurt) == pytest.approx(expected, rel=1e-12)


def test_dsr_hand_computed():
    n, sr, skew, kurt = hand_moments()
    n_trials, v = 10, 0.04
    sr0 = math.sqrt(v) * ((1 - 0.5772156649) * PHI_INV(1 - 1 / 10) + 0.5772156649 * PHI_INV(1 - 1 / (10 * math.e)))
    assert sr0 == pytest.approx(0.2 * (0.4227843 * 1.2815516 + 0.5772157 * 1.7894), abs=1e-4)
    assert expected_max_sharpe(n_trials, v) == pytest.approx(sr0, rel=1e-9)
    expected = hand_psr(sr, n, skew, kurt, sr0)
    got = deflated_sharpe_ratio(RETURNS, n_trials=n_trials, sharpe_variance=v)
    assert got == pytest.approx(expected, rel=1e-9)
    assert got < probabilistic_sharpe_ratio(RETURNS)


def test_dsr_paper_example():
    """Bailey & López de Prado (2014), section 6: annualised SR 2.5 from T = 1250 daily returns,
    best of N = 100 trials whose annualised Sharpes have variance 1/2, skewness −3, kurtosis 10:
    E[max SR] = 0.1132 (per day) and DSR = 0.9004."""
    sr, v = 2.5 / math.sqrt(250), 0.5 / 250
    assert expected_max_sharpe(100, v) == pytest.approx(0.1132, abs=1e-4)
    dsr = dsr_from_stats(sr, 1250, n_trials=100, sharpe_variance=v, skewness=-3.0, kurtosis=10.0)
    assert dsr == pytest.approx(0.9004, abs=1e-4)


def test_dsr_with_trial_sharpes_uses_their_sample_variance():
    trials = [0.1, -0.05, 0.02, 0.2, 0.0]
    v = float(np.var(trials, ddof=1))
    assert deflated_sharpe_ratio(RETURNS, n_trials=50, trial_sharpes=trials) == pytest.approx(
        deflated_sharpe_ratio(RETURNS, n_trials=50, sharpe_variance=v))
    # default: the null's variance of a Sharpe estimated from n returns, 1/(n − 1)
    assert deflated_sharpe_ratio(RETURNS, n_trials=7) == pytest.approx(
        deflated_sharpe_ratio(RETURNS, n_trials=7, sharpe_variance=1 / 4))


def test_single_trial_is_not_deflated():
    assert expected_max_sharpe(1, 0.3) == 0.0
    assert deflated_sharpe_ratio(RETURNS, n_trials=1, sharpe_variance=0.3) == pytest.approx(
        probabilistic_sharpe_ratio(RETURNS))


unit_sr = st.floats(-1.0, 1.0)
# PSR rises with SR only while γ3·SR < 2 (d/dSR of SR/sqrt(1 − γ3·SR + …) ∝ 1 − γ3·SR/2), so
# skewness is kept within [-1, 1] for |SR| <= 1.
moments = st.tuples(st.floats(-1.0, 1.0), st.floats(3.0, 12.0))


@settings(max_examples=200, deadline=None)
@given(unit_sr, unit_sr, st.integers(2, 5000), moments)
def test_psr_increases_with_sharpe(a, b, n, m):
    lo, hi = sorted((a, b))
    skew, kurt = m
    kurt = max(kurt, 1 + skew**2)  # every distribution has γ4 ≥ 1 + γ3²
    assert psr_from_stats(lo, n, skewness=skew, kurtosis=kurt) <= psr_from_stats(hi, n, skewness=skew, kurtosis=kurt)


@settings(max_examples=200, deadline=None)
@given(st.floats(0.01, 1.0), st.integers(2, 2000), st.integers(1, 2000), moments)
def test_psr_increases_with_observations_for_positive_sharpe(sr, n, extra, m):
    skew, kurt = m
    kurt = max(kurt, 1 + skew**2)
    assert psr_from_stats(sr, n, skewness=skew, kurtosis=kurt) <= psr_from_stats(sr, n + extra, skewness=skew,
                                                                                kurtosis=kurt)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10**7), st.integers(1, 1000), st.floats(1e-6, 1.0))
def test_expected_max_sharpe_grows_with_trials(n, extra, v):
    assert expected_max_sharpe(n + extra, v) > expected_max_sharpe(n, v) >= 0.0
    assert expected_max_sharpe(n, 4 * v) == pytest.approx(2 * expected_max_sharpe(n, v))


def test_expected_max_sharpe_approximates_the_max_of_normals():
    """Sanity against simulation: the mean of the max of N standard normals."""
    rng = np.random.default_rng(0)
    for n in (10, 100, 1000):
        simulated = rng.standard_normal((2000, n)).max(axis=1).mean()
        assert expected_max_sharpe(n, 1.0) == pytest.approx(simulated, rel=0.05)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-0.05, 0.05, allow_subnormal=False), min_size=10, max_size=60).filter(
    lambda xs: max(xs) - min(xs) > 1e-4), st.integers(2, 10**6), st.floats(1e-4, 0.5))
def test_dsr_below_psr_and_falls_with_trials(xs, n_trials, v):
    psr0 = probabilistic_sharpe_ratio(xs)
    dsr = deflated_sharpe_ratio(xs, n_trials=n_trials, sharpe_variance=v)
    more = deflated_sharpe_ratio(xs, n_trials=n_trials * 10, sharpe_variance=v)
    assert 0.0 <= more <= dsr <= psr0 <= 1.0
    if 1e-9 < psr0 < 1 - 1e-9:
        assert dsr < psr0


def test_max_drawdown_hand_computed():
    # equity 1 → 1.1 → 0.55 → 0.66: the fall from 1.1 to 0.55 is 50 %
    assert max_drawdown([0.1, -0.5, 0.2]) == pytest.approx(0.5)
    assert max_drawdown([0.01, 0.02]) == 0.0
    assert max_drawdown([0.1, -1.0, 0.5]) == 1.0


def test_luck_does_not_score():
    """The best of 200 pure-noise strategies looks significant on its own (PSR) but the deflated
    score knows how many were tried, so even full ML confidence cannot activate it."""
    rng = np.random.default_rng(7)
    noise = rng.normal(0.0, 0.01, size=(252, 200))
    sharpes = noise.mean(axis=0) / noise.std(axis=0, ddof=1)
    best = noise[:, int(np.argmax(sharpes))]
    assert probabilistic_sharpe_ratio(best) > 0.95
    b = backtest_score(best, n_trials=200, trial_sharpes=sharpes)
    assert b.dsr < 0.5 and b.score < 0.3
    assert activation_decision(composite_score(1.0, b), "candidate").status == "candidate"


def test_genuine_edge_scores_high():
    rng = np.random.default_rng(1)
    r = rng.normal(0.002, 0.01, 756)  # three years, true annualised Sharpe 3.2 (2.3 realised here)
    b = backtest_score(r, n_trials=20)
    assert b.dsr > 0.95 and b.score > 0.6
    assert b.score == pytest.approx(math.sqrt(b.performance * b.drawdown) * b.significance)
    assert b.performance == pytest.approx(1 - math.exp(-b.sharpe_annualised))
    assert b.drawdown == pytest.approx(1 - b.max_drawdown / 0.5)
    assert b.notes == ()
    assert set(b.as_dict()) >= {"score", "dsr", "psr", "max_drawdown", "notes"}


def test_catastrophic_drawdown_zeroes_the_score():
    rng = np.random.default_rng(1)
    r = rng.normal(0.0015, 0.01, 756)
    b = backtest_score(r, n_trials=1, max_drawdown=-0.62)  # sign-agnostic: metrics report negatives
    assert b.max_drawdown == pytest.approx(0.62) and b.score == 0.0 and b.drawdown == 0.0
    assert any("drawdown" in note for note in b.notes)
    with pytest.raises(DiscoveryInputError, match="percentage"):
        backtest_score(r, n_trials=1, max_drawdown=-23.0)


def test_losing_and_flat_strategies_score_zero():
    rng = np.random.default_rng(2)
    assert backtest_score(rng.normal(-0.001, 0.01, 500), n_trials=1).score == 0.0
    flat = backtest_score(np.zeros(100), n_trials=3)
    assert flat.score == 0.0 and math.isnan(flat.sharpe)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-0.2, 0.2, allow_subnormal=False), min_size=2, max_size=80), st.integers(1, 10**4))
def test_backtest_score_is_in_unit_interval(xs, n_trials):
    b = backtest_score(xs, n_trials=n_trials)
    assert isinstance(b, ScoreBreakdown) and 0.0 <= b.score <= 1.0
    assert 0.0 <= b.performance <= 1.0 and 0.0 <= b.drawdown <= 1.0 and 0.0 <= b.significance <= 1.0


def test_bad_inputs():
    with pytest.raises(InsufficientDataError):
        return_stats([0.01])
    with pytest.raises(DiscoveryInputError, match="position 1"):
        sharpe_ratio([0.01, math.nan, 0.02])
    with pytest.raises(DiscoveryInputError, match="n_trials"):
        deflated_sharpe_ratio(RETURNS, n_trials=0)
    with pytest.raises(DiscoveryInputError, match="not both"):
        deflated_sharpe_ratio(RETURNS, n_trials=5, trial_sharpes=[0.1, 0.2], sharpe_variance=0.1)
    with pytest.raises(DiscoveryInputError, match="cannot be smaller"):
        deflated_sharpe_ratio(RETURNS, n_trials=2, trial_sharpes=[0.1, 0.2, 0.3])
    with pytest.raises(DiscoveryInputError):
        expected_max_sharpe(5, -1.0)
    assert abs(EULER_GAMMA - 0.5772156649) < 1e-10


def test_composite_score():
    assert composite_score(0.8, 0.6) == pytest.approx(0.7)
    assert composite_score(0.0, 1.0) == 0.5
    for bad in (1.2, -0.1, math.nan, "x"):
        with pytest.raises(DiscoveryInputError):
            composite_score(bad, 0.5)
        with pytest.raises(ValueError):  # a ValueError too, for generic callers
            composite_score(0.5, bad)


@pytest.mark.parametrize(("composite", "status", "new", "changed"), [
    (0.70, "candidate", "active", True),
    (0.65, "candidate", "active", True),  # at the threshold counts
    (0.60, "candidate", "candidate", False),
    (0.40, "candidate", "candidate", False),
    (0.70, "inactive", "active", True),
    (0.55, "inactive", "inactive", False),
    (0.55, "active", "active", False),  # hysteresis: between the thresholds nothing flips
    (0.50, "active", "active", False),
    (0.49, "active", "inactive", True),
])
def test_activation_decision(composite, status, new, changed):
    d = activation_decision(composite, status)
    assert (d.status, d.previous, d.changed) == (new, status, changed)
    assert f"{composite:.3f}" in d.reason


def test_activation_decision_validates():
    with pytest.raises(DiscoveryInputError, match="must not exceed"):
        activation_decision(0.5, "active", activate_above=0.4, deactivate_below=0.6)
    with pytest.raises(DiscoveryInputError, match="unknown status"):
        activation_decision(0.5, "retired")
    with pytest.raises(DiscoveryInputError):
        activation_decision(1.5, "active")
    assert activation_decision(0.45, "candidate", activate_above=0.4, deactivate_below=0.3).status == "active"


def test_errors_are_alphaloop_errors_with_exit_code_10():
    assert issubclass(DiscoveryError, AlphaloopError) and DiscoveryError.exit_code == 10
    assert issubclass(InsufficientDataError, ValueError) and issubclass(InsufficientDataError, DiscoveryError)
