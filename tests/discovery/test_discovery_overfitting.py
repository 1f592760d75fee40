"""Probability of Backtest Overfitting (CSCV, Bailey, Borwein, López de Prado & Zhu 2015)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from alphaloop.discovery.errors import DiscoveryInputError, InsufficientDataError
from alphaloop.discovery.overfitting import probability_of_backtest_overfitting as pbo


def mean_metric(x):
    return x.mean(axis=0)


def test_hand_computed_overfit_case():
    """Two blocks, two trials, performance = mean. Split 1: in-sample = block 0 (rows 0-1), trial 0
    wins (1.5 vs 0) but out-of-sample (rows 2-3) it has 0 vs trial 1's 2: rank 1 of 2,
    ω = 1/3, λ = ln(1/2). Split 2 mirrors it. Both logits ≤ 0, so PBO = 1."""
    m = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    r = pbo(m, n_blocks=2, metric=mean_metric)
    assert r.n_combinations == 2 and r.pbo == 1.0
    np.testing.assert_array_equal(r.chosen, [0, 1])
    np.testing.assert_allclose(r.oos_rank, [1 / 3, 1 / 3])
    np.testing.assert_allclose(r.logits, [math.log(0.5)] * 2)
    np.testing.assert_allclose(r.is_performance, [1.5, 2.0])
    np.testing.assert_allclose(r.oos_performance, [0.0, 0.0])
    assert r.degradation.mean_is == pytest.approx(1.75) and r.degradation.mean_oos == 0.0
    assert r.degradation.prob_oos_loss == 0.0


def test_ties_take_the_average_rank():
    # Split 1: trial 0 wins block 0 and ties all others out of sample: average rank 2 of 3,
    # ω = 0.5, λ = 0 (counts as overfit). Split 2: all tie in block 1, the first (trial 0) is
    # chosen, and it is best in block 0: rank 3, ω = 3/4, λ = ln 3.
    m = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]])
    r = pbo(m, n_blocks=2, metric=mean_metric)
    np.testing.assert_array_equal(r.chosen, [0, 0])
    np.testing.assert_allclose(r.oos_rank, [0.5, 0.75])
    np.testing.assert_allclose(r.logits, [0.0, math.log(3)])
    assert r.pbo == 0.5


def test_dominant_trial_gives_zero_pbo():
    rng = np.random.default_rng(0)
    n = 12
    m = rng.normal(0.0, 0.01, (600, n))
    m[:, 5] += 0.01  # a true edge, in every block
    r = pbo(m, n_blocks=10)
    assert r.pbo == 0.0 and r.n_combinations == math.comb(10, 5)
    assert set(r.chosen.tolist()) == {5}
    np.testing.assert_allclose(r.logits, math.log(n))  # top rank of n: ω = n/(n + 1)
    assert r.degradation.prob_oos_loss == 0.0


def test_noise_trials_give_pbo_near_one_half():
    """Choosing the best of pure-noise trials is a coin flip out of sample. PBO of one matrix
    varies a lot (its splits share data), so the mean over seeded matrices is checked."""
    values = [pbo(np.random.default_rng(seed).normal(0, 0.01, (400, 20)), n_blocks=10).pbo for seed in range(40)]
    assert 0.4 < float(np.mean(values)) < 0.7
    assert all(0.0 <= v <= 1.0 for v in values)


def test_noise_degrades_out_of_sample():
    r = pbo(np.random.default_rng(11).normal(0, 0.01, (500, 30)), n_blocks=8)
    d = r.degradation
    assert d.mean_oos < d.mean_is and d.slope < 0.5
    q = r.logit_quantiles()
    assert q[0.05] <= q[0.5] <= q[0.95]


def test_default_sharpe_matches_a_plain_sharpe_metric():
    m = np.random.default_rng(5).normal(0.0005, 0.01, (160, 7))
    fast = pbo(m, n_blocks=8)
    slow = pbo(m, n_blocks=8, metric=lambda x: x.mean(axis=0) / x.std(axis=0, ddof=1))
    np.testing.assert_allclose(fast.is_performance, slow.is_performance, rtol=1e-9)
    np.testing.assert_allclose(fast.oos_performance, slow.oos_performance, rtol=1e-9)
    np.testing.assert_array_equal(fast.chosen, slow.chosen)
    assert fast.pbo == slow.pbo


def test_dataframe_columns_name_the_trials():
    df = pd.DataFrame(np.random.default_rng(1).normal(0, 0.01, (80, 3)), columns=["a", "b", "c"])
    r = pbo(df, n_blocks=4)
    assert r.trials == ("a", "b", "c") and r.n_trials == 3 and r.n_obs == 80 and r.n_blocks == 4


def test_constant_trial_ranks_last():
    m = np.random.default_rng(2).normal(0, 0.01, (40, 3))
    m[:, 0] = 0.0  # never trades: no Sharpe
    r = pbo(m, n_blocks=4)
    assert 0 not in set(r.chosen.tolist())


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(8, 40), st.integers(2, 6)),
              elements=st.floats(-0.1, 0.1, allow_subnormal=False)),
       st.sampled_from([2, 4]))
def test_pbo_is_a_probability(m, s):
    r = pbo(m, n_blocks=s)
    assert 0.0 <= r.pbo <= 1.0
    assert len(r.logits) == r.n_combinations == math.comb(s, s // 2)
    assert np.all((r.oos_rank > 0) & (r.oos_rank < 1))
    assert r.pbo == pytest.approx(np.mean(r.logits <= 0))


def test_bad_inputs():
    m = np.zeros((40, 3))
    with pytest.raises(DiscoveryInputError, match="even"):
        pbo(m, n_blocks=5)
    with pytest.raises(InsufficientDataError, match="at least 2 trials"):
        pbo(m[:, :1])
    with pytest.raises(InsufficientDataError, match=r"40 periods .* need at least 64"):
        pbo(m, n_blocks=32)
    bad = m.copy()
    bad[7, 2] = np.nan
    with pytest.raises(DiscoveryInputError, match="row 7, trial 2"):
        pbo(bad, n_blocks=4)
    with pytest.raises(DiscoveryInputError, match="T×N"):
        pbo(np.zeros(40))
    with pytest.raises(DiscoveryInputError, match="shape"):
        pbo(m, n_blocks=4, metric=lambda x: x.mean())
