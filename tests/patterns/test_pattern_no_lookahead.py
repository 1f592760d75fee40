"""No look-ahead in the detectors: the signals of the first k bars are the signals of all bars
restricted to those k bars, for many k (hypothesis), and on market data."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pattern_helpers import FAST, frames, load_market

from alphaloop.patterns import EmaCross, PatternEngine, RsiExtremes, VolatilityBreakout, VwapDeviation

# Short periods so that generated series of a few dozen bars produce signals.
DETECTORS = {
    "ema_cross": EmaCross(fast=2, slow=5, atr_period=3),
    "rsi_extremes": RsiExtremes(period=3, lower=35.0, upper=65.0),
    "vwap_deviation": VwapDeviation(k=1.0, min_bars=2),
    "volatility_breakout": VolatilityBreakout(period=3, baseline=4, squeeze=0.9, expansion=1.2,
                                              memory=6),
    "volatility_breakout_atr": VolatilityBreakout(measure="atr", period=3, baseline=4, squeeze=0.9,
                                                  expansion=1.2, memory=6),
}


def _check_prefixes(detector, df: pd.DataFrame, cuts) -> int:
    full = PatternEngine([detector]).run(df, "X")
    for k in cuts:
        part = PatternEngine([detector]).run(df.iloc[:k], "X")
        assert part == [s for s in full if s.bar < k], f"k={k}"
    return len(full)


@FAST
@given(df=frames(max_size=120), cuts=st.lists(st.integers(0, 120), min_size=1, max_size=6))
def test_signals_on_a_prefix_are_the_prefix_of_the_signals(df: pd.DataFrame, cuts: list[int]) -> None:
    for name, detector in DETECTORS.items():
        try:
            _check_prefixes(detector, df, sorted({min(k, len(df)) for k in cuts}))
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_prefixes_on_market_data(name: str) -> None:
    df = load_market("EURUSD_1h.csv").iloc[:1200]
    assert _check_prefixes(DETECTORS[name], df, (0, 1, 5, 37, 200, 611, 1000, 1199)) > 5


def test_prefixes_with_the_default_engine() -> None:
    df = load_market("BTC-USD_daily.csv")
    full = PatternEngine().run(df, "BTC")
    for k in (30, 500, 1777, 2500):
        assert PatternEngine().run(df.iloc[:k], "BTC") == [s for s in full if s.bar < k]
