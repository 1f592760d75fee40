"""Agreement with the real TA-Lib: within 1e-9 relative after the warm-up, NaN exactly where
TA-Lib has NaN, on the market fixtures and on hypothesis-generated bars."""

from __future__ import annotations

import numpy as np
import pytest
import talib
from hypothesis import given
from hypothesis import strategies as st
from indicator_helpers import FAST, MARKET_FILES, assert_close, load_market, ohlcv

import alphaloop.indicators as ind


def _price_scale(d: dict) -> float:
    return float(np.max(np.abs(d["close"]))) if len(d["close"]) else 0.0


def _volume_scale(d: dict) -> float:
    return float(np.sum(d["volume"]))


# name -> (ours(d, **p), TA-Lib(d, **p), scale(d), default parameters)
CASES = {
    "sma": (lambda d, n: ind.sma(d["close"], n), lambda d, n: talib.SMA(d["close"], n), _price_scale),
    "ema": (lambda d, n: ind.ema(d["close"], n), lambda d, n: talib.EMA(d["close"], n), _price_scale),
    "wma": (lambda d, n: ind.wma(d["close"], n), lambda d, n: talib.WMA(d["close"], n), _price_scale),
    "rsi": (lambda d, n: ind.rsi(d["close"], n), lambda d, n: talib.RSI(d["close"], n), lambda d: 100.0),
    "atr": (lambda d, n: ind.atr(d["high"], d["low"], d["close"], n),
            lambda d, n: talib.ATR(d["high"], d["low"], d["close"], n), _price_scale),
    "adx": (lambda d, n: ind.adx(d["high"], d["low"], d["close"], n),
            lambda d, n: talib.ADX(d["high"], d["low"], d["close"], n), lambda d: 100.0),
    "bbands": (lambda d, n: ind.bbands(d["close"], n, 2.0, 1.5),
               lambda d, n: talib.BBANDS(d["close"], n, 2.0, 1.5), _price_scale),
}


def _check(ours, theirs, scale: float) -> None:
    if isinstance(theirs, tuple):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_close(a, b, scale)
    else:
        assert_close(ours, theirs, scale)


@pytest.mark.parametrize("name", MARKET_FILES)
def test_defaults_match_talib_on_market_data(name: str) -> None:
    """Plain relative error (no scale floor), every output, TA-Lib's default parameters."""
    df = load_market(name)
    h, lo, c, v = (df[k].to_numpy() for k in ("high", "low", "close", "volume"))
    _check(ind.sma(c), talib.SMA(c), 0.0)
    _check(ind.ema(c), talib.EMA(c), 0.0)
    _check(ind.wma(c), talib.WMA(c), 0.0)
    _check(ind.rsi(c), talib.RSI(c), 0.0)
    _check(ind.true_range(h, lo, c), talib.TRANGE(h, lo, c), 0.0)
    _check(ind.atr(h, lo, c), talib.ATR(h, lo, c), 0.0)
    _check(ind.adx(h, lo, c), talib.ADX(h, lo, c), 0.0)
    _check(ind.obv(c, v), talib.OBV(c, v), 0.0)
    _check(ind.bbands(c), talib.BBANDS(c), 0.0)
    _check(ind.macd(c), talib.MACD(c), 0.0)
    _check(ind.stoch(h, lo, c), talib.STOCH(h, lo, c), 0.0)


@pytest.mark.parametrize("name", MARKET_FILES)
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("n", [2, 5, 21, 50])
def test_periods_match_talib_on_market_data(name: str, case: str, n: int) -> None:
    df = load_market(name)
    d = {k: df[k].to_numpy() for k in df.columns}
    ours, theirs, scale = CASES[case]
    _check(ours(d, n), theirs(d, n), scale(d))


@pytest.mark.parametrize("name", MARKET_FILES)
@pytest.mark.parametrize(("fast", "slow", "signal"), [(3, 10, 1), (5, 35, 5), (12, 26, 9), (2, 3, 2)])
def test_macd_alignment_matches_talib(name: str, fast: int, slow: int, signal: int) -> None:
    c = load_market(name)["close"].to_numpy()
    _check(ind.macd(c, fast, slow, signal), talib.MACD(c, fast, slow, signal), float(np.max(c)))


@pytest.mark.parametrize("name", MARKET_FILES)
@pytest.mark.parametrize(("fastk", "slowk", "slowd"), [(5, 3, 3), (14, 3, 3), (1, 1, 1), (9, 1, 4)])
def test_stoch_matches_talib(name: str, fastk: int, slowk: int, slowd: int) -> None:
    df = load_market(name)
    h, lo, c = (df[k].to_numpy() for k in ("high", "low", "close"))
    _check(ind.stoch(h, lo, c, fastk, slowk, slowd),
           talib.STOCH(h, lo, c, fastk, slowk, 0, slowd, 0), 100.0)


@FAST
@given(d=ohlcv(max_size=120), case=st.sampled_from(sorted(CASES)), n=st.integers(2, 30))
def test_matches_talib_on_generated_bars(d: dict, case: str, n: int) -> None:
    ours, theirs, scale = CASES[case]
    _check(ours(d, n), theirs(d, n), scale(d))


@FAST
@given(d=ohlcv(max_size=120), n=st.integers(1, 30))
def test_one_input_averages_and_atr_accept_period_one(d: dict, n: int) -> None:
    for case in ("sma", "ema", "wma", "atr"):
        ours, theirs, scale = CASES[case]
        _check(ours(d, n), theirs(d, n), scale(d))


@FAST
@given(d=ohlcv(max_size=120))
def test_true_range_and_obv_match_talib_on_generated_bars(d: dict) -> None:
    _check(ind.true_range(d["high"], d["low"], d["close"]),
           talib.TRANGE(d["high"], d["low"], d["close"]), _price_scale(d))
    _check(ind.obv(d["close"], d["volume"]), talib.OBV(d["close"], d["volume"]), _volume_scale(d))


@FAST
@given(d=ohlcv(max_size=120), fast=st.integers(2, 15), extra=st.integers(1, 20), signal=st.integers(1, 12))
def test_macd_matches_talib_on_generated_bars(d: dict, fast: int, extra: int, signal: int) -> None:
    c = d["close"]
    _check(ind.macd(c, fast, fast + extra, signal), talib.MACD(c, fast, fast + extra, signal),
           _price_scale(d))


@FAST
@given(d=ohlcv(max_size=120), fastk=st.integers(1, 15), slowk=st.integers(1, 6), slowd=st.integers(1, 6))
def test_stoch_matches_talib_on_generated_bars(d: dict, fastk: int, slowk: int, slowd: int) -> None:
    _check(ind.stoch(d["high"], d["low"], d["close"], fastk, slowk, slowd),
           talib.STOCH(d["high"], d["low"], d["close"], fastk, slowk, 0, slowd, 0), 100.0)


@FAST
@given(d=ohlcv(min_size=1, max_size=80), lead=st.integers(1, 10), case=st.sampled_from(sorted(CASES)))
def test_leading_nan_is_skipped_like_talib(d: dict, lead: int, case: str) -> None:
    """TA-Lib's wrapper starts after leading NaN (a warm-up inherited from another indicator)."""
    padded = {k: np.concatenate((np.full(lead, np.nan), v)) for k, v in d.items()}
    ours, theirs, scale = CASES[case]
    _check(ours(padded, 5), theirs(padded, 5), scale(d))


@pytest.mark.parametrize(("func", "ours"), [
    ("RSI", lambda d: ind.rsi(d["close"], 14)),
    ("ATR", lambda d: ind.atr(d["high"], d["low"], d["close"], 14)),
    ("ADX", lambda d: ind.adx(d["high"], d["low"], d["close"], 14)),
    ("EMA", lambda d: ind.ema(d["close"], 14)),
])
def test_talib_unstable_period_only_hides_leading_values(func: str, ours) -> None:
    """With an unstable period TA-Lib seeds at the same bar and hides the first values; the
    values it shows are ours, so unstable period 0 (TA-Lib's default) loses nothing."""
    df = load_market("GOOG_daily.csv")
    d = {k: df[k].to_numpy() for k in df.columns}
    args = [d["close"]] if func in ("RSI", "EMA") else [d["high"], d["low"], d["close"]]
    talib.set_unstable_period(func, 30)
    try:
        theirs = getattr(talib, func)(*args, 14)
    finally:
        talib.set_unstable_period(func, 0)
    mine = ours(d)
    shown = ~np.isnan(theirs)
    assert np.isnan(theirs[: np.argmax(shown)]).all()
    assert_close(mine[shown], theirs[shown], 100.0)
    assert np.count_nonzero(np.isnan(mine)) == np.count_nonzero(np.isnan(theirs)) - 30
