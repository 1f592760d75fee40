"""Bad input gets a clear IndicatorError (an AlphaloopError with exit code 5) before any state
changes: mismatched lengths, bad periods, NaN inside a series, infinities, bars out of order."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import alphaloop.indicators as ind
from alphaloop.core.errors import AlphaloopError
from alphaloop.indicators import IndicatorError

X = np.linspace(10.0, 20.0, 50)
H, L = X + 1.0, X - 1.0
V = np.full(50, 100.0)
T = pd.date_range("2024-01-02", periods=50, freq="1h", tz="UTC")


def test_indicator_error_is_an_alphaloop_error_with_exit_code_5() -> None:
    assert issubclass(IndicatorError, AlphaloopError)
    assert not issubclass(IndicatorError, ValueError)
    assert IndicatorError.exit_code == 5


@pytest.mark.parametrize("call", [
    lambda: ind.atr(H, L[:-1], X),
    lambda: ind.adx(H, L, X[:10]),
    lambda: ind.stoch(H[:3], L, X),
    lambda: ind.obv(X, V[:-2]),
    lambda: ind.vwap(H, L, X, V[:5]),
    lambda: ind.true_range(H, L, X[1:]),
])
def test_mismatched_lengths_are_refused(call) -> None:
    with pytest.raises(IndicatorError, match="different lengths"):
        call()


@pytest.mark.parametrize(("call", "name"), [
    (lambda n: ind.sma(X, n), "n"), (lambda n: ind.ema(X, n), "n"), (lambda n: ind.wma(X, n), "n"),
    (lambda n: ind.rsi(X, n), "n"), (lambda n: ind.atr(H, L, X, n), "n"),
    (lambda n: ind.adx(H, L, X, n), "n"), (lambda n: ind.bbands(X, n), "n"),
    (lambda n: ind.zscore(X, n), "n"), (lambda n: ind.volatility(X, n), "n"),
    (lambda n: ind.macd(X, n, 26, 9), "fast"), (lambda n: ind.macd(X, 12, 26, n), "signal"),
    (lambda n: ind.stoch(H, L, X, n), "fastk"), (lambda n: ind.stoch(H, L, X, 5, 3, n), "slowd"),
    (lambda n: ind.SMA(n), "n"), (lambda n: ind.EMA(n), "n"), (lambda n: ind.ATR(n), "n"),
    (lambda n: ind.MACD(12, 26, n), "signal"), (lambda n: ind.Stoch(5, n), "slowk"),
])
@pytest.mark.parametrize("bad", [0, -3, 2.5, True, None, "14"])
def test_bad_periods_are_refused_with_the_parameter_name(call, name: str, bad) -> None:
    with pytest.raises(IndicatorError, match=rf"^{name} must be an integer"):
        call(bad)


def test_periods_below_the_indicator_minimum_are_refused() -> None:
    for call in (lambda: ind.rsi(X, 1), lambda: ind.adx(H, L, X, 1), lambda: ind.bbands(X, 1),
                 lambda: ind.zscore(X, 1), lambda: ind.RSI(1), lambda: ind.BBands(1)):
        with pytest.raises(IndicatorError, match=">= 2"):
            call()
    with pytest.raises(IndicatorError, match="fast must be < slow"):
        ind.macd(X, 26, 12)
    with pytest.raises(IndicatorError, match="fast must be < slow"):
        ind.MACD(10, 10)


@pytest.mark.parametrize("call", [
    lambda x: ind.sma(x, 3), lambda x: ind.ema(x, 3), lambda x: ind.wma(x, 3),
    lambda x: ind.rsi(x, 3), lambda x: ind.macd(x, 2, 4, 2), lambda x: ind.bbands(x, 3),
    lambda x: ind.zscore(x, 3), lambda x: ind.volatility(x, 3), lambda x: ind.obv(x, V),
    lambda x: ind.atr(H, L, x, 3), lambda x: ind.adx(H, L, x, 3), lambda x: ind.stoch(H, L, x),
    lambda x: ind.true_range(H, L, x), lambda x: ind.vwap(H, L, x, V),
])
def test_nan_inside_a_series_is_refused_with_its_index(call) -> None:
    x = X.copy()
    x[17] = np.nan
    with pytest.raises(IndicatorError, match="NaN at index 17"):
        call(x)
    x[:5] = np.nan  # leading NaN is fine; the one at 17 still is not
    with pytest.raises(IndicatorError, match="NaN at index 17"):
        call(x)


def test_nan_at_the_end_and_infinity_are_refused() -> None:
    x = X.copy()
    x[-1] = np.nan
    with pytest.raises(IndicatorError, match="NaN at index 49"):
        ind.ema(x, 5)
    x[-1] = np.inf
    with pytest.raises(IndicatorError, match="infinite value at index 49"):
        ind.ema(x, 5)
    with pytest.raises(IndicatorError, match="high has an infinite value"):
        ind.atr(np.where(X > 15, np.inf, H), L, X)


def test_non_numeric_and_two_dimensional_input_is_refused() -> None:
    with pytest.raises(IndicatorError, match="close: expected a 1-D series of numbers"):
        ind.sma(["a", "b"], 2)
    with pytest.raises(IndicatorError, match="expected a 1-D series, got shape"):
        ind.sma(np.ones((3, 3)), 2)


def test_empty_and_short_series_are_all_warm_up() -> None:
    assert ind.sma([], 3).shape == (0,)
    assert np.isnan(ind.rsi(X[:14], 14)).all()
    assert np.isnan(ind.adx(H[:27], L[:27], X[:27], 14)).all()
    assert all(np.isnan(a).all() for a in ind.macd(X[:33]))
    assert not np.isnan(ind.macd(X[:34]).macd[-1])


@pytest.mark.parametrize("factory", [
    lambda: (ind.SMA(3), (1.0,)), lambda: (ind.EMA(3), (1.0,)), lambda: (ind.WMA(3), (1.0,)),
    lambda: (ind.RSI(3), (1.0,)), lambda: (ind.MACD(2, 4, 2), (1.0,)),
    lambda: (ind.BBands(3), (1.0,)), lambda: (ind.ZScore(3), (1.0,)),
    lambda: (ind.Volatility(3), (1.0,)), lambda: (ind.OBV(), (1.0, 5.0)),
    lambda: (ind.ATR(3), (2.0, 1.0, 1.5)), lambda: (ind.ADX(3), (2.0, 1.0, 1.5)),
    lambda: (ind.Stoch(), (2.0, 1.0, 1.5)), lambda: (ind.TrueRange(), (2.0, 1.0, 1.5)),
])
def test_streaming_refuses_nan_after_start_and_keeps_its_state(factory) -> None:
    obj, good = factory()
    twin, _ = factory()
    nan_row = tuple(math.nan for _ in good)
    assert np.all(np.isnan(np.asarray(obj.update(*nan_row), dtype=float)))  # leading NaN: skipped
    for _ in range(6):
        obj.update(*good)
        twin.update(*good)
    with pytest.raises(IndicatorError, match="NaN after the series started"):
        obj.update(*nan_row)
    with pytest.raises(IndicatorError, match="infinite"):
        obj.update(*(math.inf for _ in good))
    step = tuple(g * 1.1 for g in good)
    assert np.array_equal(np.asarray(obj.update(*step), dtype=float),
                          np.asarray(twin.update(*step), dtype=float), equal_nan=True)


def test_streaming_vwap_refuses_a_bar_not_after_the_last_one() -> None:
    vw = ind.VWAP("D")
    vw.update(T[0], 11.0, 9.0, 10.0, 5.0)
    before = vw.update(T[2], 12.0, 10.0, 11.0, 5.0)
    for stale in (T[1], T[2]):
        with pytest.raises(IndicatorError, match="is not after the last one"):
            vw.update(stale, 50.0, 40.0, 45.0, 1e6)
    assert vw.value == before  # the refused bar changed nothing
    twin = ind.VWAP("D")
    twin.update(T[0], 11.0, 9.0, 10.0, 5.0)
    twin.update(T[2], 12.0, 10.0, 11.0, 5.0)
    assert vw.update(T[3], 13.0, 11.0, 12.0, 5.0) == twin.update(T[3], 13.0, 11.0, 12.0, 5.0)
    bands = ind.VWAPBands(2.0, "D")
    bands.update(T[1], 11.0, 9.0, 10.0, 5.0)
    with pytest.raises(IndicatorError, match="is not after the last one"):
        bands.update(T[0], 11.0, 9.0, 10.0, 5.0)


def test_vwap_input_checks() -> None:
    with pytest.raises(IndicatorError, match="needs the bar times"):
        ind.vwap(H, L, X, V, anchor="D")
    with pytest.raises(IndicatorError, match="anchor must be one of"):
        ind.vwap(H, L, X, V, T, anchor="H")
    with pytest.raises(IndicatorError, match="offset must be a time offset"):
        ind.VWAP("D", offset="soon")
    with pytest.raises(IndicatorError, match="times is not strictly increasing: index 7"):
        ind.vwap(H, L, X, V, T.delete(7).insert(7, T[6]), anchor="D")
    with pytest.raises(IndicatorError, match="times has 49 values"):
        ind.vwap(H, L, X, V, T[1:], anchor="D")
    with pytest.raises(IndicatorError, match=r"volume must be >= 0, got -1\.0 at index 3"):
        ind.vwap(H, L, X, np.where(np.arange(50) == 3, -1.0, V))
    with pytest.raises(IndicatorError, match="volume must be >= 0"):
        ind.VWAP().update(T[0], 1.0, 1.0, 1.0, -5.0)
    with pytest.raises(IndicatorError, match="expected a timestamp"):
        ind.VWAP().update("not a time", 1.0, 1.0, 1.0, 5.0)


def test_volatility_needs_positive_prices_and_valid_options() -> None:
    with pytest.raises(IndicatorError, match=r"close must be > 0 for log returns, got 0\.0 at index 4"):
        ind.volatility(np.where(np.arange(50) == 4, 0.0, X), 5)
    with pytest.raises(IndicatorError, match="close must be > 0"):
        ind.Volatility(3).update(-1.0)
    with pytest.raises(IndicatorError, match="periods_per_year must be > 0"):
        ind.volatility(X, 5, annualize=True, periods_per_year=0)
    with pytest.raises(IndicatorError, match="ddof must be 0 or 1"):
        ind.zscore(X, 5, ddof=2)
    with pytest.raises(IndicatorError, match="nbdevup must be a finite number"):
        ind.bbands(X, 5, float("nan"))
