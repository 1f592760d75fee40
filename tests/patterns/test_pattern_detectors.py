"""Each built-in detector, checked against the vectorised indicators it reads (an independent
path through the indicator package) and on constructed series with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pattern_helpers import MARKET_FILES, load_market

import alphaloop.indicators as ind
from alphaloop.core.market import Direction
from alphaloop.patterns import (
    EmaCross,
    PatternEngine,
    PatternError,
    RsiExtremes,
    VolatilityBreakout,
    VwapDeviation,
)


def _run(detector, df: pd.DataFrame):
    return PatternEngine([detector]).run(df, "X")


# ----------------------------------------------------------------------------- EMA cross

@pytest.mark.parametrize("file", MARKET_FILES)
def test_ema_cross_fires_where_the_vectorised_emas_change_sign(file: str) -> None:
    df = load_market(file)
    c = df["close"].to_numpy()
    fast, slow = ind.ema(c, 12), ind.ema(c, 26)
    atr = ind.atr(df["high"], df["low"], c, 14)
    gap = fast - slow
    expected, last = [], 0
    for i in range(len(c)):
        if np.isnan(gap[i]) or np.isnan(atr[i]) or gap[i] == 0:
            continue
        sign = 1 if gap[i] > 0 else -1
        if last and sign != last:
            expected.append((i, Direction.LONG if sign > 0 else Direction.SHORT,
                             min(1.0, abs(gap[i]) / atr[i] / 0.5)))
        last = sign
    got = [(s.bar, s.direction, s.strength) for s in _run(EmaCross(), df)]
    assert got == expected
    assert len(got) > 20


def test_ema_cross_on_a_v_shaped_series() -> None:
    price = np.concatenate((np.linspace(100, 60, 60), np.linspace(60, 120, 60)))
    index = pd.date_range("2024-01-01", periods=120, freq="D", tz="UTC")
    df = pd.DataFrame({"open": price, "high": price + 1, "low": price - 1, "close": price,
                       "volume": 1e3}, index=index)
    signals = _run(EmaCross(fast=3, slow=10, atr_period=5), df)
    assert len(signals) == 1
    s = signals[0]
    assert s.direction is Direction.LONG and 60 < s.bar < 75
    assert set(s.features) == {"ema_fast", "ema_slow", "gap", "atr", "gap_atr"}
    assert s.features["ema_fast"] > s.features["ema_slow"]


# ----------------------------------------------------------------------------- RSI extremes

@pytest.mark.parametrize("file", MARKET_FILES)
@pytest.mark.parametrize("mode", ["reversal", "momentum"])
def test_rsi_extremes_fire_on_entering_a_zone(file: str, mode: str) -> None:
    df = load_market(file)
    rsi = ind.rsi(df["close"], 14)
    expected, zone = [], 0
    for i, r in enumerate(rsi):
        if np.isnan(r):
            continue
        now = -1 if r < 30 else (1 if r > 70 else 0)
        if now and now != zone:
            long_ = (now < 0) == (mode == "reversal")
            strength = (30 - r) / 30 if now < 0 else (r - 70) / 30
            expected.append((i, Direction.LONG if long_ else Direction.SHORT, strength))
        zone = now
    got = [(s.bar, s.direction, s.strength) for s in _run(RsiExtremes(mode=mode), df)]
    assert got == expected
    assert len(got) > 10


# ----------------------------------------------------------------------------- VWAP deviation

@pytest.mark.parametrize("mode", ["mean_reversion", "breakout"])
@pytest.mark.parametrize(("anchor", "offset"), [("D", "0h"), ("D", "22h"), ("W", "0h")])
def test_vwap_deviation_fires_on_leaving_the_band(mode: str, anchor: str, offset: str) -> None:
    df = load_market("EURUSD_1h.csv")
    args = (df["high"], df["low"], df["close"], df["volume"], df.index, anchor, offset)
    vwap, std = ind.vwap(*args), ind.vwap_std(*args)
    shifted = df.index.tz_localize(None) - pd.Timedelta(offset)
    keys = shifted.floor("D") if anchor == "D" else shifted.to_period("W-SUN")
    session_bar = pd.Series(1, index=df.index).groupby(np.asarray(keys)).cumsum().to_numpy()
    c = df["close"].to_numpy()
    expected, side = [], 0
    for i in range(len(c)):
        if np.isnan(vwap[i]) or session_bar[i] < 5 or not std[i] > 0:
            side = 0
            continue
        z = (c[i] - vwap[i]) / std[i]
        now = 1 if z > 2.0 else (-1 if z < -2.0 else 0)
        if now and now != side:
            up = now > 0 if mode == "breakout" else now < 0
            expected.append((i, Direction.LONG if up else Direction.SHORT, 1 - 2.0 / abs(z)))
        side = now
    detector = VwapDeviation(anchor=anchor, offset=offset, mode=mode)
    got = [(s.bar, s.direction, s.strength) for s in _run(detector, df)]
    assert got == expected
    assert len(got) > 50


def test_vwap_deviation_ignores_sessions_without_volume_and_daily_bars() -> None:
    df = load_market("EURUSD_1h.csv").iloc[:500]
    assert _run(VwapDeviation(), df.assign(volume=0.0)) == []
    assert _run(VwapDeviation(), load_market("GOOG_daily.csv")) == []  # one bar per daily session
    assert len(_run(VwapDeviation(anchor="none"), load_market("GOOG_daily.csv"))) > 0


# ----------------------------------------------------------------------------- volatility breakout

def _squeeze_then_burst(direction: int) -> pd.DataFrame:
    calm = 100 + 3.0 * np.sin(np.arange(80) * 0.7)  # steady width: no squeeze
    quiet = calm[-1] + 0.05 * np.sin(np.arange(40) * 0.7)  # the same rhythm, 60x narrower
    burst = quiet[-1] + direction * np.arange(1, 11) * 2.0
    close = np.concatenate((calm, quiet, burst))
    open_ = np.concatenate(([close[0]], close[:-1]))
    index = pd.date_range("2024-01-01", periods=len(close), freq="h", tz="UTC")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + 0.01,
                         "low": np.minimum(open_, close) - 0.01, "close": close, "volume": 1.0},
                        index=index)


@pytest.mark.parametrize("measure", ["bbands", "atr"])
@pytest.mark.parametrize("direction", [1, -1])
def test_volatility_breakout_after_a_squeeze(measure: str, direction: int) -> None:
    df = _squeeze_then_burst(direction)
    signals = _run(VolatilityBreakout(measure=measure, period=10, baseline=30), df)
    assert len(signals) == 1
    s = signals[0]
    assert 120 <= s.bar < 130  # in the burst, not in the calm or the quiet part
    assert s.direction is (Direction.LONG if direction > 0 else Direction.SHORT)
    assert s.features["ratio"] >= 1.5 and s.features["squeeze_width"] <= 0.75 * s.features["baseline"]
    assert 0.5 <= s.strength <= 1.0


def test_volatility_breakout_matches_a_replay_on_vectorised_bands() -> None:
    df = load_market("BTC-USD_daily.csv")
    upper, middle, lower = ind.bbands(df["close"], 20, 2.0, 2.0)
    width = (upper - lower) / middle
    base = np.full(len(width), np.nan)
    base[19:] = ind.sma(width[19:], 50)
    expected, low, since = [], -1.0, 0
    o, c = df["open"].to_numpy(), df["close"].to_numpy()
    for i in range(len(width)):
        if np.isnan(base[i]):
            continue
        if width[i] <= 0.75 * base[i]:
            low, since = (width[i] if low < 0 or width[i] < low else low), 0
            continue
        if low < 0:
            continue
        since += 1
        if since > 20:
            low = -1.0
            continue
        if width[i] / low < 1.5 or c[i] == o[i]:
            continue
        expected.append((i, Direction.LONG if c[i] > o[i] else Direction.SHORT))
        low = -1.0
    got = [(s.bar, s.direction) for s in _run(VolatilityBreakout(), df)]
    assert got == expected and len(got) > 10


# ----------------------------------------------------------------------------- parameters

@pytest.mark.parametrize(("cls", "params", "message"), [
    (EmaCross, {"fast": 26, "slow": 12}, "parameter 'fast' must be < slow"),
    (EmaCross, {"fast": 0}, "parameter 'fast' must be an integer >= 1, got 0"),
    (EmaCross, {"fast": True}, "parameter 'fast' must be an integer >= 1, got True"),
    (EmaCross, {"full_atr": -1}, r"parameter 'full_atr' must be > 0"),
    (RsiExtremes, {"lower": 80}, "parameter 'lower' must be < upper"),
    (RsiExtremes, {"upper": 100}, "parameter 'upper' must be > 0 and < 100, got 100"),
    (RsiExtremes, {"mode": "contrarian"}, r"parameter 'mode' must be one of \['reversal', 'momentum'\]"),
    (VwapDeviation, {"k": float("nan")}, "parameter 'k' must be a finite number"),
    (VwapDeviation, {"offset": "whenever"}, "parameter 'offset' must be a time offset"),
    (VwapDeviation, {"anchor": "H"}, "parameter 'anchor' must be one of"),
    (VolatilityBreakout, {"squeeze": 1.2}, "parameter 'squeeze' must be > 0 and < 1"),
    (VolatilityBreakout, {"expansion": 1.0}, "parameter 'expansion' must be > 1"),
    (VolatilityBreakout, {"period": "20"}, "parameter 'period' must be an integer"),
])
def test_invalid_parameters_are_named(cls, params: dict, message: str) -> None:
    with pytest.raises(PatternError, match=f"detector '{cls.name}': {message}"):
        cls(**params)


def test_unknown_parameters_are_named_with_the_known_ones() -> None:
    with pytest.raises(PatternError, match=r"detector 'ema_cross': unknown parameter\(s\) \['fats'\]; "
                                           r"known parameters: \['atr_period', 'fast', 'full_atr', 'slow'\]"):
        EmaCross(fats=5)


def test_clone_keeps_parameters_and_drops_state() -> None:
    d = RsiExtremes(period=5, lower=20.0)
    df = load_market("GOOG_daily.csv")
    PatternEngine([d]).run(df, "X")
    twin = d.clone()
    assert twin is not d and dict(twin.config) == dict(d.config)
    assert repr(twin) == "RsiExtremes(period=5, lower=20.0, upper=70.0, mode='reversal')"
