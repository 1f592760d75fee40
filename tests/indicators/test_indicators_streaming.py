"""Streaming == vectorised: feeding bars one at a time gives, at every bar, the value the
vectorised function has there (bit for bit; WMA within 1e-12 relative), and ``.value`` holds it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from indicator_helpers import (
    FAST,
    MARKET_FILES,
    assert_close,
    assert_identical,
    bar_times,
    load_market,
    ohlcv,
)

import alphaloop.indicators as ind

HLC = ("high", "low", "close")
TIMED = ("time", "high", "low", "close", "volume")

# name -> (vectorised(d), streaming factory, streaming update's inputs)
SPECS = {
    "sma": (lambda d: ind.sma(d["close"], 7), lambda: ind.SMA(7), ("close",)),
    "sma1": (lambda d: ind.sma(d["close"], 1), lambda: ind.SMA(1), ("close",)),
    "ema": (lambda d: ind.ema(d["close"], 9), lambda: ind.EMA(9), ("close",)),
    "ema1": (lambda d: ind.ema(d["close"], 1), lambda: ind.EMA(1), ("close",)),
    "wma": (lambda d: ind.wma(d["close"], 6), lambda: ind.WMA(6), ("close",)),
    "rsi": (lambda d: ind.rsi(d["close"], 5), lambda: ind.RSI(5), ("close",)),
    "macd": (lambda d: ind.macd(d["close"], 3, 8, 4), lambda: ind.MACD(3, 8, 4), ("close",)),
    "stoch": (lambda d: ind.stoch(d["high"], d["low"], d["close"], 5, 3, 2),
              lambda: ind.Stoch(5, 3, 2), HLC),
    "adx": (lambda d: ind.adx(d["high"], d["low"], d["close"], 4), lambda: ind.ADX(4), HLC),
    "true_range": (lambda d: ind.true_range(d["high"], d["low"], d["close"]), ind.TrueRange, HLC),
    "atr": (lambda d: ind.atr(d["high"], d["low"], d["close"], 5), lambda: ind.ATR(5), HLC),
    "bbands": (lambda d: ind.bbands(d["close"], 6, 2.0, 1.0), lambda: ind.BBands(6, 2.0, 1.0),
               ("close",)),
    "volatility": (lambda d: ind.volatility(d["close"], 5, annualize=True),
                   lambda: ind.Volatility(5, annualize=True), ("close",)),
    "volatility_ddof0": (lambda d: ind.volatility(d["close"], 3, ddof=0),
                         lambda: ind.Volatility(3, ddof=0), ("close",)),
    "zscore": (lambda d: ind.zscore(d["close"], 6), lambda: ind.ZScore(6), ("close",)),
    "zscore_ddof1": (lambda d: ind.zscore(d["close"], 4, ddof=1), lambda: ind.ZScore(4, ddof=1),
                     ("close",)),
    "obv": (lambda d: ind.obv(d["close"], d["volume"]), ind.OBV, ("close", "volume")),
    "vwap": (lambda d: ind.vwap(d["high"], d["low"], d["close"], d["volume"]), ind.VWAP, TIMED),
    "vwap_day": (lambda d: ind.vwap(d["high"], d["low"], d["close"], d["volume"], d["time"], "D"),
                 lambda: ind.VWAP("D"), TIMED),
    "vwap_fx_day": (lambda d: ind.vwap(d["high"], d["low"], d["close"], d["volume"], d["time"], "D",
                                       "22h"), lambda: ind.VWAP("D", "22h"), TIMED),
    "vwap_bands_week": (lambda d: ind.vwap_bands(d["high"], d["low"], d["close"], d["volume"],
                                                 d["time"], "W", nbdev=1.5),
                        lambda: ind.VWAPBands(1.5, "W"), TIMED),
    "vwap_bands_month": (lambda d: ind.vwap_bands(d["high"], d["low"], d["close"], d["volume"],
                                                  d["time"], "M"),
                         lambda: ind.VWAPBands(2.0, "M"), TIMED),
}


def _stream(factory, d: dict, columns: tuple[str, ...]):
    obj = factory()
    out = []
    for row in zip(*(d[c] for c in columns)):
        value = obj.update(*row)
        last = obj.value
        same = (np.array_equal(np.asarray(value), np.asarray(last), equal_nan=True)
                or (not isinstance(value, tuple) and math.isnan(value)))
        assert same, f"{type(obj).__name__}.value {last!r} != returned {value!r}"
        out.append(value)
    if out and isinstance(out[0], tuple):
        return tuple(np.array(col, dtype=float) for col in zip(*out))
    return np.array(out, dtype=float)


def _compare(name: str, streamed, vectorised) -> None:
    pairs = zip(streamed, vectorised) if isinstance(vectorised, tuple) else [(streamed, vectorised)]
    for s, v in pairs:
        if name == "wma":  # running sums between exact refreshes (see WMA's docstring)
            assert_close(s, v, rel=1e-12)
        else:
            assert_identical(s, v)


def _with_times(d: dict) -> dict:
    return {**d, "time": bar_times(len(d["close"]))}


def _check_all(d: dict) -> None:
    for name, (vectorised, factory, columns) in SPECS.items():
        try:
            _compare(name, _stream(factory, d, columns), vectorised(d))
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc


@FAST
@given(d=ohlcv(max_size=120))
def test_streaming_equals_vectorised_on_generated_bars(d: dict) -> None:
    _check_all(_with_times(d))


@FAST
@given(d=ohlcv(min_size=1, max_size=60), lead=st.integers(1, 8))
def test_leading_nan_is_skipped_by_both_forms(d: dict, lead: int) -> None:
    padded = {k: np.concatenate((np.full(lead, np.nan), v)) for k, v in d.items()}
    padded["time"] = bar_times(lead + len(d["close"]))
    _check_all(padded)


@pytest.mark.parametrize("file", MARKET_FILES)
@pytest.mark.parametrize("name", sorted(SPECS))
def test_streaming_equals_vectorised_on_market_data(file: str, name: str) -> None:
    df = load_market(file)
    d = {k: df[k].to_numpy() for k in df.columns}
    d["time"] = df.index
    vectorised, factory, columns = SPECS[name]
    _compare(name, _stream(factory, d, columns), vectorised(d))


@pytest.mark.parametrize("file", MARKET_FILES)
def test_default_parameters_stream_identically(file: str) -> None:
    df = load_market(file)
    h, lo, c = (df[k].to_numpy() for k in ("high", "low", "close"))
    cases = [
        (ind.sma(c), ind.SMA(), (c,)), (ind.ema(c), ind.EMA(), (c,)), (ind.rsi(c), ind.RSI(), (c,)),
        (ind.atr(h, lo, c), ind.ATR(), (h, lo, c)), (ind.adx(h, lo, c), ind.ADX(), (h, lo, c)),
        (ind.macd(c), ind.MACD(), (c,)), (ind.stoch(h, lo, c), ind.Stoch(), (h, lo, c)),
        (ind.bbands(c), ind.BBands(), (c,)), (ind.zscore(c), ind.ZScore(), (c,)),
        (ind.volatility(c), ind.Volatility(), (c,)),
    ]
    for vectorised, obj, inputs in cases:
        out = [obj.update(*row) for row in zip(*inputs)]
        streamed = (tuple(np.array(col) for col in zip(*out)) if isinstance(out[0], tuple)
                    else np.array(out))
        _compare(type(obj).__name__, streamed, vectorised)
