"""Walk-forward windows and evaluation: choices are made on train bars only, scores come from
test bars only; checked with a synthetic evaluator and with the real backtester (sma_cross on
GOOG daily bars)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaloop.backtest import run_backtest
from alphaloop.data import load_bars
from alphaloop.discovery.errors import DiscoveryInputError, InsufficientDataError
from alphaloop.discovery.scoring import ScoreBreakdown
from alphaloop.discovery.walk_forward import Window, walk_forward_evaluate, walk_forward_windows
from alphaloop.strategy import load_strategy

GOOG = Path(__file__).parents[1] / "fixtures" / "market" / "GOOG_daily.csv"


def test_rolling_windows_explicit():
    assert walk_forward_windows(100, train=50, test=10) == [
        Window(0, 50, 50, 60), Window(10, 60, 60, 70), Window(20, 70, 70, 80),
        Window(30, 80, 80, 90), Window(40, 90, 90, 100)]
    # 99 bars: the last test window would be short, so it is left out
    assert len(walk_forward_windows(99, train=50, test=10)) == 4


def test_anchored_windows_explicit():
    assert walk_forward_windows(80, train=50, test=10, anchored=True) == [
        Window(0, 50, 50, 60), Window(0, 60, 60, 70), Window(0, 70, 70, 80)]


def test_step_larger_than_test_leaves_gaps():
    ws = walk_forward_windows(100, train=40, test=10, step=20)
    assert [(w.test_start, w.test_end) for w in ws] == [(40, 50), (60, 70), (80, 90)]
    assert ws[0].train == slice(0, 40) and ws[0].test == slice(40, 50)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 400), st.integers(1, 100), st.integers(1, 50), st.integers(0, 30), st.booleans())
def test_window_properties(n, train, test, extra_step, anchored):
    step = test + extra_step
    try:
        ws = walk_forward_windows(n, train=train, test=test, step=step, anchored=anchored)
    except InsufficientDataError:
        assert n < train + test
        return
    assert len(ws) == (n - train - test) // step + 1
    for k, w in enumerate(ws):
        assert 0 <= w.train_start < w.train_end == w.test_start < w.test_end <= n
        assert w.test_end - w.test_start == test
        assert w.train_start == 0 if anchored else w.train_end - w.train_start == train
        if k:
            prev = ws[k - 1]
            assert prev.test_end <= w.test_start  # time-ordered, never overlapping
            assert w.test_start - prev.test_start == step
            if step == test:
                assert prev.test_end == w.test_start  # contiguous
    assert ws[-1].test_end + step > n  # no further whole window fits


def test_too_short_data_names_the_sizes():
    with pytest.raises(InsufficientDataError, match=r"59 bars .* train=50 \+ test=10 .* at least 60"):
        walk_forward_windows(59, train=50, test=10)
    with pytest.raises(ValueError, match="at least 80"):  # a ValueError for generic callers
        walk_forward_windows(70, train=50, test=10, min_windows=3)
    with pytest.raises(DiscoveryInputError, match="overlap"):
        walk_forward_windows(100, train=50, test=10, step=5)
    for bad in ({"train": 0, "test": 5}, {"train": 5, "test": 0}, {"train": 2.5, "test": 5}, {"train": True, "test": 5}):
        with pytest.raises(DiscoveryInputError):
            walk_forward_windows(100, **bad)


def synthetic(n=300, k=4, seed=0):
    """A frame whose columns r0..r{k-1} are the per-bar returns of k candidate 'strategies'."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2020-01-01", periods=n, freq="D", tz="UTC")
    return pd.DataFrame(rng.normal(0.0, 0.01, (n, k)) + np.linspace(-0.002, 0.002, k),
                        index=index, columns=[f"r{i}" for i in range(k)])


def test_synthetic_selection_is_made_on_train_and_scored_on_test():
    data = synthetic()
    seen = []

    def evaluate(col, df):
        seen.append((df.index[0], df.index[-1]))
        return df[col]

    res = walk_forward_evaluate(list(data.columns), data, evaluate, train=100, test=50, lookback=10)
    assert len(res.windows) == 4 and len(seen) == 4 * (4 + 1)
    pos = {t: i for i, t in enumerate(data.index)}
    calls = iter(seen)
    for w, c in zip(res.windows, res.choices):
        train_sharpes = []
        for _ in data.columns:  # every candidate saw only the lookback + train bars
            first, last = next(calls)
            assert (pos[first], pos[last]) == (max(0, w.train_start - 10), w.train_end - 1)
        for col in data.columns:
            x = data[col].to_numpy()[w.train_start:w.train_end]
            train_sharpes.append(x.mean() / x.std(ddof=1))
        assert c.index == int(np.argmax(train_sharpes)) and c.params == data.columns[c.index]
        assert c.train_scores == pytest.approx(train_sharpes)
        first, last = next(calls)  # the chosen one, on lookback + test bars
        assert (pos[first], pos[last]) == (w.test_start - 10, w.test_end - 1)
        oos = res.oos_returns.loc[data.index[w.test_start]:data.index[w.test_end - 1]]
        np.testing.assert_array_equal(oos.to_numpy(), data[c.params].to_numpy()[w.test_start:w.test_end])
        assert c.test_return == pytest.approx(np.prod(1 + oos.to_numpy()) - 1)
    assert res.oos_returns.index.equals(data.index[100:300])
    np.testing.assert_allclose(res.oos_equity.to_numpy(), np.cumprod(1 + res.oos_returns.to_numpy()))


def test_future_bars_cannot_change_a_choice():
    data = synthetic(seed=4)
    scrambled = data.copy()
    scrambled.iloc[100:] = np.random.default_rng(9).normal(0, 0.05, scrambled.iloc[100:].shape)

    def evaluate(col, df):
        return df[col].to_numpy()

    a = walk_forward_evaluate(list(data.columns), data, evaluate, train=100, test=50)
    b = walk_forward_evaluate(list(data.columns), scrambled, evaluate, train=100, test=50)
    assert a.choices[0].index == b.choices[0].index
    assert a.choices[0].train_scores == b.choices[0].train_scores


def test_evaluate_output_is_checked():
    data = synthetic(n=200)
    with pytest.raises(DiscoveryInputError, match="expected 100 per-bar returns"):
        walk_forward_evaluate(["r0"], data, lambda c, df: df[c].to_numpy()[1:], train=100, test=50)
    with pytest.raises(DiscoveryInputError, match="index"):
        walk_forward_evaluate(["r0"], data, lambda c, df: df[c].reset_index(drop=True), train=100, test=50)
    with pytest.raises(DiscoveryInputError, match="non-finite"):
        walk_forward_evaluate(["r0"], data, lambda c, df: np.full(len(df), np.inf), train=100, test=50)
    with pytest.raises(DiscoveryInputError, match="no candidates"):
        walk_forward_evaluate([], data, lambda c, df: df[c], train=100, test=50)
    with pytest.raises(InsufficientDataError, match="200 bars"):
        walk_forward_evaluate(["r0"], data, lambda c, df: df[c], train=150, test=60)


# --- with the real backtester -------------------------------------------------------------------

CANDIDATES = [{"fast": 5, "slow": 20}, {"fast": 10, "slow": 30}, {"fast": 20, "slow": 50}, {"fast": 10, "slow": 60}]
TRAIN, TEST, LOOKBACK = 500, 250, 60


def backtest(params, df):
    return run_backtest(load_strategy("sma_cross", params), df)


def bar_returns(result):
    """Per-bar returns of a backtest, from its equity curve (first bar against the initial cash)."""
    e = result.equity["equity"]
    return e.pct_change().fillna(e.iloc[0] / result.initial_cash - 1.0)


@pytest.fixture(scope="module")
def goog():
    return load_bars(GOOG, instrument="GOOG")


@pytest.fixture(scope="module")
def walked(goog):
    slices = []

    def recording(params, df):
        slices.append((dict(params), df.index[0], df.index[-1]))
        return backtest(params, df)

    return walk_forward_evaluate(CANDIDATES, goog, recording, train=TRAIN, test=TEST, lookback=LOOKBACK), slices


def test_backtest_walk_forward_selects_on_train(goog, walked):
    res, _ = walked
    assert len(res.windows) == (len(goog) - TRAIN - TEST) // TEST + 1 == 6
    for w, c in zip(res.windows, res.choices):
        lo = max(0, w.train_start - LOOKBACK)
        sharpes = []
        for params in CANDIDATES:
            r = bar_returns(backtest(params, goog.iloc[lo:w.train_end])).iloc[w.train_start - lo:]
            assert r.index.equals(goog.index[w.train_start:w.train_end])
            sd = r.std(ddof=1)
            sharpes.append(r.mean() / sd if sd > 0 else 0.0)
        assert c.train_scores == pytest.approx(sharpes)
        assert c.params == CANDIDATES[int(np.argmax(sharpes))]


def test_backtest_walk_forward_reports_test_bars_only(goog, walked):
    res, slices = walked
    test_index = np.concatenate([np.arange(w.test_start, w.test_end) for w in res.windows])
    assert res.oos_returns.index.equals(goog.index[test_index])
    assert res.oos_returns.index[0] == goog.index[TRAIN]  # the first train span is never scored
    pos = {t: i for i, t in enumerate(goog.index)}
    per_window = len(CANDIDATES) + 1
    assert len(slices) == per_window * len(res.windows)
    for k, (w, c) in enumerate(zip(res.windows, res.choices)):
        calls = slices[k * per_window:(k + 1) * per_window]
        for _, first, last in calls[:-1]:  # train evaluations end before the test window starts
            assert (pos[first], pos[last]) == (max(0, w.train_start - LOOKBACK), w.train_end - 1)
            assert pos[last] < w.test_start
        params, first, last = calls[-1]
        assert params == c.params and (pos[first], pos[last]) == (w.test_start - LOOKBACK, w.test_end - 1)
        # the stitched returns are exactly the chosen backtest's returns on the test bars
        expected = bar_returns(backtest(c.params, goog.iloc[w.test_start - LOOKBACK:w.test_end])).iloc[LOOKBACK:]
        got = res.oos_returns.iloc[k * TEST:(k + 1) * TEST]
        assert got.index.equals(expected.index)
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-15)
    final = res.oos_equity.iloc[-1]
    assert final == pytest.approx(math.prod(1 + c.test_return for c in res.choices))


def test_backtest_walk_forward_score(walked):
    res, _ = walked
    b = res.score()
    assert isinstance(b, ScoreBreakdown) and 0.0 <= b.score <= 1.0
    assert b.n_trials == len(CANDIDATES) and b.n_obs == len(res.oos_returns)
    assert math.isfinite(res.degradation)
