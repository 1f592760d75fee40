"""Shared data for the pattern tests: market fixtures as engine input, generated OHLCV frames."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from alphaloop.core.market import Bar

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "market"
MARKET_FILES = ("GOOG_daily.csv", "EURUSD_1h.csv", "BTC-USD_daily.csv")

# Per-test settings (not a global profile: other packages' tests share the session).
FAST = settings(max_examples=int(os.environ.get("ALPHALOOP_HYPOTHESIS_EXAMPLES", "30")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@cache
def _load(name: str) -> pd.DataFrame:
    df = pd.read_csv(FIXTURES / name, index_col=0)
    df.index = pd.to_datetime(df.index, utc=True)
    return df.rename(columns=str.lower)[["open", "high", "low", "close", "volume"]].astype(float)


def load_market(name: str) -> pd.DataFrame:
    """The market data contract: open/high/low/close/volume on a UTC DatetimeIndex."""
    return _load(name).copy()


def bars(df: pd.DataFrame, instrument: str) -> list[Bar]:
    return [Bar(instrument, t, r.open, r.high, r.low, r.close, r.volume) for t, r in zip(df.index, df.itertuples())]


_step = st.one_of(st.just(0.0), st.floats(-0.06, 0.06, allow_nan=False, allow_subnormal=False))


@st.composite
def frames(draw, min_size: int = 0, max_size: int = 120) -> pd.DataFrame:
    """OHLCV frames on hourly-ish UTC times (several sessions), flat stretches included."""
    steps = draw(st.lists(_step, min_size=min_size, max_size=max_size))
    size = len(steps)
    c = draw(st.floats(1.0, 1000.0)) * np.cumprod(1.0 + np.asarray(steps, dtype=float))
    body = np.asarray(draw(st.lists(st.floats(-0.02, 0.02, allow_subnormal=False), min_size=size,
                                    max_size=size)), dtype=float)
    wick = np.asarray(draw(st.lists(st.floats(0.0, 0.03, allow_subnormal=False), min_size=size,
                                    max_size=size)), dtype=float)
    vol = np.asarray(draw(st.lists(st.integers(0, 10**6), min_size=size, max_size=size)), dtype=float)
    o = c * (1.0 - body)
    high = np.maximum(o, c) * (1.0 + wick)
    low = np.minimum(o, c) * (1.0 - wick)
    index = pd.date_range("2024-03-28 18:00", periods=size, freq="3h", tz="UTC")
    return pd.DataFrame({"open": o, "high": high, "low": low, "close": c, "volume": vol}, index=index)
