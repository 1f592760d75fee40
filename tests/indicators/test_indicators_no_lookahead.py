"""No look-ahead: every vectorised indicator computed on the first k bars equals the first k
values computed on all bars, bit for bit, for many k."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from indicator_helpers import FAST, assert_identical, bar_times, load_market, ohlcv

import alphaloop.indicators as ind

INDICATORS = {
    "sma": lambda d: ind.sma(d["close"], 5),
    "ema": lambda d: ind.ema(d["close"], 5),
    "wma": lambda d: ind.wma(d["close"], 5),
    "rsi": lambda d: ind.rsi(d["close"], 4),
    "macd": lambda d: ind.macd(d["close"], 3, 7, 3),
    "stoch": lambda d: ind.stoch(d["high"], d["low"], d["close"], 4, 2, 2),
    "adx": lambda d: ind.adx(d["high"], d["low"], d["close"], 3),
    "true_range": lambda d: ind.true_range(d["high"], d["low"], d["close"]),
    "atr": lambda d: ind.atr(d["high"], d["low"], d["close"], 4),
    "bbands": lambda d: ind.bbands(d["close"], 5),
    "volatility": lambda d: ind.volatility(d["close"], 4, annualize=True),
    "zscore": lambda d: ind.zscore(d["close"], 5),
    "obv": lambda d: ind.obv(d["close"], d["volume"]),
    "vwap": lambda d: ind.vwap(d["high"], d["low"], d["close"], d["volume"]),
    "vwap_day": lambda d: ind.vwap(d["high"], d["low"], d["close"], d["volume"], d["time"], "D"),
    "vwap_std_week": lambda d: ind.vwap_std(d["high"], d["low"], d["close"], d["volume"], d["time"], "W"),
    "vwap_bands_month": lambda d: ind.vwap_bands(d["high"], d["low"], d["close"], d["volume"],
                                                 d["time"], "M"),
}


def _prefix(d: dict, k: int) -> dict:
    return {name: values[:k] for name, values in d.items()}


def _assert_prefix(full, part, k: int) -> None:
    if isinstance(full, tuple):
        for f, p in zip(full, part):
            assert_identical(p, f[:k])
    else:
        assert_identical(part, full[:k])


@FAST
@given(d=ohlcv(max_size=120), cuts=st.lists(st.integers(0, 120), min_size=1, max_size=8))
def test_prefix_values_do_not_depend_on_later_bars(d: dict, cuts: list[int]) -> None:
    d = {**d, "time": bar_times(len(d["close"]), freq="5h")}
    for name, func in INDICATORS.items():
        full = func(d)
        for k in sorted({min(c, len(d["close"])) for c in cuts}):
            try:
                _assert_prefix(full, func(_prefix(d, k)), k)
            except AssertionError as exc:
                raise AssertionError(f"{name} with k={k}: {exc}") from exc


@pytest.mark.parametrize("name", sorted(INDICATORS))
def test_prefix_values_on_market_data(name: str) -> None:
    df = load_market("EURUSD_1h.csv").iloc[:1500]
    d = {k: df[k].to_numpy() for k in df.columns}
    d["time"] = df.index
    full = INDICATORS[name](d)
    for k in (0, 1, 2, 3, 10, 27, 100, 499, 1000, 1499):
        _assert_prefix(full, INDICATORS[name](_prefix(d, k)), k)
