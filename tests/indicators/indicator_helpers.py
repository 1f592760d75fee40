"""Shared data for the indicator tests: the real market fixtures and hypothesis strategies."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "market"
MARKET_FILES = ("GOOG_daily.csv", "EURUSD_1h.csv", "BTC-USD_daily.csv")


@cache
def load_market(name: str) -> pd.DataFrame:
    """A fixture as open/high/low/close/volume floats on a UTC DatetimeIndex."""
    df = pd.read_csv(FIXTURES / name, index_col=0)
    df.index = pd.to_datetime(df.index, utc=True)
    df = df.rename(columns=str.lower)[["open", "high", "low", "close", "volume"]].astype(float)
    return df


# Relative steps, with exact zeros mixed in so flat stretches (ties, zero ranges) occur often.
_step = st.one_of(st.just(0.0), st.floats(-0.08, 0.08, allow_nan=False, allow_subnormal=False))


@st.composite
def closes(draw, min_size: int = 0, max_size: int = 150) -> np.ndarray:
    """A positive price path (a random walk of relative steps from a start in [0.01, 5e4])."""
    start = draw(st.floats(0.01, 5e4, allow_nan=False))
    steps = draw(st.lists(_step, min_size=min_size, max_size=max_size))
    return start * np.cumprod(1.0 + np.asarray(steps, dtype=float)) if steps else np.array([])


@st.composite
def ohlcv(draw, min_size: int = 0, max_size: int = 150) -> dict[str, np.ndarray]:
    """Consistent bars: low <= open, close <= high; volume >= 0 (zeros included)."""
    c = draw(closes(min_size, max_size))
    size = len(c)
    frac = st.one_of(st.just(0.0), st.floats(0.0, 0.05, allow_nan=False, allow_subnormal=False))
    up = np.asarray(draw(st.lists(frac, min_size=size, max_size=size)), dtype=float)
    down = np.asarray(draw(st.lists(frac, min_size=size, max_size=size)), dtype=float)
    where = np.asarray(draw(st.lists(st.floats(0.0, 1.0), min_size=size, max_size=size)), dtype=float)
    vol = np.asarray(draw(st.lists(st.one_of(st.just(0.0), st.integers(0, 10**7).map(float)),
                                   min_size=size, max_size=size)), dtype=float)
    prev = np.concatenate(([c[0]], c[:-1])) if size else c
    o = prev * (1.0 + (where - 0.5) * 0.01)  # open near the previous close
    high = np.maximum(np.maximum(c, o) * (1.0 + up), np.maximum(c, o))
    low = np.minimum(np.minimum(c, o) * (1.0 - down), np.minimum(c, o))
    return {"open": o, "high": high, "low": low, "close": c, "volume": vol}


def bar_times(size: int, start: str = "2024-01-01 20:00", freq: str = "37min") -> pd.DatetimeIndex:
    """Intraday UTC bar times that cross day, week and month boundaries."""
    return pd.date_range(start, periods=size, freq=freq, tz="UTC")


def assert_same_nan(ours: np.ndarray, ref: np.ndarray) -> None:
    mismatch = np.flatnonzero(np.isnan(ours) != np.isnan(ref))
    assert mismatch.size == 0, f"NaN positions differ at {mismatch[:10]}"


def assert_close(ours: np.ndarray, ref: np.ndarray, scale: float = 0.0, rel: float = 1e-9) -> None:
    """Same NaN positions, and |ours - ref| <= rel * max(|ref|, scale) elsewhere.

    ``scale`` is the indicator's natural magnitude (100 for a 0..100 oscillator, the price
    level for a difference of averages such as MACD): a relative error is meaningless where
    the value itself crosses zero.
    """
    ours, ref = np.asarray(ours, dtype=float), np.asarray(ref, dtype=float)
    assert ours.shape == ref.shape
    assert_same_nan(ours, ref)
    m = ~np.isnan(ref)
    err = np.abs(ours[m] - ref[m])
    tol = rel * np.maximum(np.abs(ref[m]), scale)
    bad = np.flatnonzero(err > tol)
    assert bad.size == 0, (f"{bad.size} values differ, first at valid position {bad[0]}: "
                           f"{ours[m][bad[0]]!r} vs {ref[m][bad[0]]!r}")


def assert_identical(ours: np.ndarray, ref: np.ndarray) -> None:
    """Bit for bit (NaN where NaN; 0.0 == -0.0)."""
    ours, ref = np.asarray(ours, dtype=float), np.asarray(ref, dtype=float)
    assert ours.shape == ref.shape
    assert_same_nan(ours, ref)
    diff = np.flatnonzero(~((ours == ref) | np.isnan(ref)))
    assert diff.size == 0, f"differ at {diff[:10]}: {ours[diff[:3]]!r} vs {ref[diff[:3]]!r}"


# Per-test settings (not a global profile: other packages' tests share the session).
# ALPHALOOP_HYPOTHESIS_EXAMPLES=2000 runs a deeper search.
FAST = settings(max_examples=int(os.environ.get("ALPHALOOP_HYPOTHESIS_EXAMPLES", "40")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
