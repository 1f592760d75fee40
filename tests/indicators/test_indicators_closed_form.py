"""Indicators TA-Lib does not have (VWAP, log-return volatility, z-score), and SMA's pandas
parity, checked against pandas and closed forms computed independently per window/session."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from indicator_helpers import (
    FAST,
    MARKET_FILES,
    assert_close,
    assert_identical,
    bar_times,
    closes,
    load_market,
    ohlcv,
)

import alphaloop.indicators as ind


def _windows(x: np.ndarray, n: int):
    for i in range(n - 1, len(x)):
        yield i, x[i - n + 1 : i + 1]


# ----------------------------------------------------------------------------- SMA == pandas

@FAST
@given(x=closes(max_size=150), n=st.integers(1, 30))
def test_sma_is_bitwise_pandas_rolling_mean(x: np.ndarray, n: int) -> None:
    expected = pd.Series(x, dtype=float).rolling(n).mean().to_numpy()
    assert_identical(ind.sma(x, n), expected)
    stream = ind.SMA(n)
    assert_identical(np.array([stream.update(v) for v in x]), expected)


@pytest.mark.parametrize("file", MARKET_FILES)
def test_sma_is_bitwise_pandas_on_market_data(file: str) -> None:
    s = load_market(file)["close"]
    for n in (1, 5, 30, 200):
        assert_identical(ind.sma(s, n), s.rolling(n).mean().to_numpy())


# ----------------------------------------------------------------------------- VWAP

def _vwap_reference(d: dict, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per session, the prefix VWAP and volume-weighted std, each from np.average over the prefix."""
    tp = (d["high"] + d["low"] + d["close"]) / 3.0
    v = d["volume"]
    vw, sd = np.full(len(tp), np.nan), np.full(len(tp), np.nan)
    first = 0
    for i in range(len(tp)):
        if i and keys[i] != keys[i - 1]:
            first = i
        w = v[first : i + 1]
        if w.sum() > 0:
            p = tp[first : i + 1]
            vw[i] = np.average(p, weights=w)
            sd[i] = np.sqrt(np.average((p - vw[i]) ** 2, weights=w))
    return vw, sd


@FAST
@given(d=ohlcv(max_size=120), anchor=st.sampled_from([None, "D", "W", "M"]),
       offset=st.sampled_from(["0h", "22h", "-3h"]))
def test_vwap_matches_per_session_closed_form(d: dict, anchor, offset: str) -> None:
    times = bar_times(len(d["close"]), freq="7h")
    if anchor is None:
        keys = np.zeros(len(times))
    else:
        shifted = times.tz_localize(None) - pd.Timedelta(offset)
        keys = {"D": shifted.floor("D").asi8, "W": shifted.to_period("W-SUN").asi8,
                "M": shifted.to_period("M").asi8}[anchor]
    ref_vwap, ref_std = _vwap_reference(d, keys)
    args = (d["high"], d["low"], d["close"], d["volume"], times, anchor, offset)
    scale = float(np.max(d["close"])) if len(d["close"]) else 0.0
    assert_close(ind.vwap(*args), ref_vwap, scale, rel=1e-12)
    assert_close(ind.vwap_std(*args), ref_std, scale, rel=1e-9)
    upper, middle, lower = ind.vwap_bands(*args, nbdev=2.5)
    assert_identical(middle, ind.vwap(*args))
    assert_close(upper, ref_vwap + 2.5 * ref_std, scale, rel=1e-9)
    assert_close(lower, ref_vwap - 2.5 * ref_std, scale, rel=1e-9)


def test_vwap_restarts_each_session_at_the_typical_price() -> None:
    df = load_market("EURUSD_1h.csv")
    tp = ((df["high"] + df["low"] + df["close"]) / 3.0).to_numpy()
    value = ind.vwap(df["high"], df["low"], df["close"], df["volume"], df.index, anchor="D")
    firsts = np.flatnonzero(np.diff(df.index.floor("D").asi8) != 0) + 1
    assert len(firsts) > 100
    assert np.allclose(value[firsts], tp[firsts], rtol=1e-15)
    cumulative = ind.vwap(df["high"], df["low"], df["close"], df["volume"])
    expected = np.cumsum(tp * df["volume"].to_numpy()) / np.cumsum(df["volume"].to_numpy())
    assert_identical(cumulative, expected)


def test_vwap_of_a_flat_session_has_exactly_zero_std() -> None:
    times = bar_times(6, freq="1h")
    price = np.full(6, 101.3)
    std = ind.vwap_std(price, price, price, np.arange(1.0, 7.0), times, "D")
    assert np.all(std == 0.0)


def test_vwap_is_nan_until_the_session_has_volume() -> None:
    times = bar_times(4, start="2024-01-01 00:00", freq="1h")
    c = np.array([10.0, 11.0, 12.0, 13.0])
    value = ind.vwap(c, c, c, np.array([0.0, 0.0, 2.0, 2.0]), times, "D")
    assert np.isnan(value[:2]).all() and value[2] == 12.0 and value[3] == 12.5


# ----------------------------------------------------------------------------- volatility

@FAST
@given(x=closes(min_size=2, max_size=150), n=st.integers(2, 25), ddof=st.sampled_from([0, 1]),
       annualize=st.booleans())
def test_volatility_matches_per_window_std_of_log_returns(x: np.ndarray, n: int, ddof: int,
                                                          annualize: bool) -> None:
    r = np.log(x[1:] / x[:-1])
    factor = np.sqrt(365.0) if annualize else 1.0
    expected = np.full(len(x), np.nan)
    for i, w in _windows(r, n):
        expected[i + 1] = np.std(w, ddof=ddof) * factor
    scale = float(np.max(np.abs(r))) * factor if len(r) else 0.0
    got = ind.volatility(x, n, annualize=annualize, periods_per_year=365.0, ddof=ddof)
    assert_close(got, expected, scale, rel=1e-9)


@pytest.mark.parametrize("file", MARKET_FILES)
def test_volatility_matches_pandas_on_market_data(file: str) -> None:
    s = load_market(file)["close"]
    expected = np.log(s / s.shift()).rolling(20).std().to_numpy() * np.sqrt(252.0)
    assert_close(ind.volatility(s, 20, annualize=True), expected, rel=1e-9)


# ----------------------------------------------------------------------------- z-score, bands

@FAST
@given(x=closes(max_size=150), n=st.integers(2, 25), ddof=st.sampled_from([0, 1]))
def test_zscore_matches_per_window_closed_form(x: np.ndarray, n: int, ddof: int) -> None:
    z = ind.zscore(x, n, ddof)
    assert np.isnan(z[: n - 1]).all()
    for i, w in _windows(x, n):
        mean, std = np.mean(w), np.std(w, ddof=ddof)
        if np.ptp(w) == 0:
            assert z[i] == 0.0
            continue
        expected = (x[i] - mean) / std
        # x - mean carries rounding of order eps * |mean|: z's condition number is |mean| / std.
        tol = (1e-9 + 1e3 * np.finfo(float).eps * abs(mean) / std) * max(1.0, abs(expected))
        assert abs(z[i] - expected) <= tol


@pytest.mark.parametrize("file", MARKET_FILES)
def test_zscore_matches_two_pass_windows_and_pandas_on_market_data(file: str) -> None:
    s = load_market(file)["close"]
    x = s.to_numpy()
    w = np.lib.stride_tricks.sliding_window_view(x, 20)
    two_pass = np.full(len(x), np.nan)
    two_pass[19:] = (x[19:] - w.mean(axis=1)) / w.std(axis=1)
    assert_close(ind.zscore(s, 20), two_pass, 1.0, rel=1e-9)
    # pandas' running Welford variance is itself ~1e-9 off on the hourly FX closes.
    pandas = ((s - s.rolling(20).mean()) / s.rolling(20).std(ddof=0)).to_numpy()
    assert_close(ind.zscore(s, 20), pandas, 1.0, rel=1e-8)


def test_flat_window_has_zero_band_width_and_zero_zscore() -> None:
    x = np.array([1.0, 1.5, 1.12044, 1.12044, 1.12044, 1.12044, 1.12044])
    upper, middle, lower = ind.bbands(x, 4)
    assert upper[-1] == middle[-1] == lower[-1] == 1.12044
    assert ind.zscore(x, 4)[-1] == 0.0


def test_zscore_beyond_k_means_outside_the_bollinger_bands() -> None:
    c = load_market("GOOG_daily.csv")["close"].to_numpy()
    z = ind.zscore(c, 20)
    upper, _, lower = ind.bbands(c, 20, 2.0, 2.0)
    clear = np.abs(np.abs(z) - 2.0) > 1e-9  # away from the boundary itself
    valid = ~np.isnan(z) & clear
    assert np.array_equal((np.abs(z) > 2.0)[valid], ((c > upper) | (c < lower))[valid])
