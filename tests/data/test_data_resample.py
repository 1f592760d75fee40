"""resample_bars against a direct groupby computation and against bucket invariants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaloop.core.errors import DataError
from alphaloop.data import generate_bars, load_bars, resample_bars

AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def by_groupby(df: pd.DataFrame, keys: pd.DatetimeIndex) -> pd.DataFrame:
    """The same aggregation done with groupby on explicit bucket keys (no resample machinery)."""
    out = df.groupby(keys).agg(AGG)
    out.index.name = "time"
    return out


@pytest.fixture(scope="module")
def eurusd() -> pd.DataFrame:
    return load_bars(Path(__file__).resolve().parents[1] / "fixtures" / "market" / "EURUSD_1h.csv")


@pytest.mark.parametrize("rule, keys", [
    ("4h", lambda i: i.floor("4h")),
    ("1D", lambda i: i.floor("D")),
    ("W-MON", lambda i: i.normalize() - pd.to_timedelta(i.day_of_week, unit="D")),
    ("MS", lambda i: i.normalize() - pd.to_timedelta(i.day - 1, unit="D")),
])
def test_matches_direct_groupby(eurusd: pd.DataFrame, rule: str, keys) -> None:
    out = resample_bars(eurusd, rule)
    expected = by_groupby(eurusd, keys(eurusd.index))
    pd.testing.assert_frame_equal(out, expected, check_freq=False)
    assert out.attrs == eurusd.attrs


def test_drops_empty_periods(eurusd: pd.DataFrame) -> None:
    daily = resample_bars(eurusd, "1D")
    assert set(daily.index.day_of_week) <= {0, 1, 2, 3, 4, 6}  # no Saturday bars in FX data
    assert daily.notna().all().all()
    assert len(daily) == eurusd.index.normalize().nunique()


def test_same_rule_is_identity(eurusd: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(resample_bars(eurusd, "1h"), eurusd, check_freq=False)


@pytest.mark.parametrize("rule, words", [("30min", "finer"), ("ME", "period-start"), ("bogus", "invalid")])
def test_bad_rules(eurusd: pd.DataFrame, rule: str, words: str) -> None:
    with pytest.raises(DataError, match=words) as e:
        resample_bars(eurusd, rule)
    assert e.value.source == eurusd.attrs["source"]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), seed=st.integers(0, 2**32),
       rule=st.sampled_from(["2h", "3h", "1D", "W-MON"]), drop=st.integers(0, 299))
def test_bucket_invariants(n: int, seed: int, rule: str, drop: int) -> None:
    bars = generate_bars(n, seed=seed, freq="1h")
    if n > 2:  # a gap in the data: the affected bucket has fewer bars or disappears
        bars = bars.drop(bars.index[drop % n])
    out = resample_bars(bars, rule)
    ends = [*out.index[1:], bars.index[-1] + pd.Timedelta(1, "ns")]
    assert out.index.is_monotonic_increasing and out.index[0] <= bars.index[0]
    counted = 0
    for start, end, row in zip(out.index, ends, out.itertuples()):
        part = bars[(bars.index >= start) & (bars.index < end)]
        assert len(part) > 0  # no empty buckets
        counted += len(part)
        assert row.open == part["open"].iloc[0] and row.close == part["close"].iloc[-1]
        assert row.high == part["high"].max() and row.low == part["low"].min()
        assert row.volume == pytest.approx(part["volume"].sum(), rel=1e-12)
    assert counted == len(bars)
    assert out["volume"].sum() == pytest.approx(bars["volume"].sum(), rel=1e-12)
    assert np.all(out["high"] >= np.maximum(out["open"], out["close"]))
