"""Resampling bars to a coarser bar size."""

from __future__ import annotations

import pandas as pd
from pandas.tseries.frequencies import to_offset
from pandas.tseries.offsets import BaseOffset, BQuarterEnd, BYearEnd, MonthEnd, QuarterEnd, YearEnd

from alphaloop.core.errors import DataError
from alphaloop.core.market import OHLCV

_AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
# End-anchored calendar rules group by period *end*; with bars labelled by their open time that would
# put the last day of a month into the next month's bucket, so they are refused with a hint.
_END_ANCHORED = (MonthEnd, QuarterEnd, YearEnd, BQuarterEnd, BYearEnd)


def _length(offset: BaseOffset, at: pd.Timestamp) -> pd.Timedelta:
    """The (average) length of one period of ``offset``; calendar offsets measured from ``at``."""
    try:
        return pd.Timedelta(offset.nanos, unit="ns")
    except ValueError:  # not a fixed frequency (B, W, MS, ...): average over a year of periods
        return ((at + 12 * offset) - at) / 12


def resample_bars(df: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Bars of ``df`` aggregated to ``rule`` (a pandas offset alias: ``"4h"``, ``"1D"``, ``"W-MON"``, ``"MS"``).

    Each output bar is labelled by the start of its bucket (bars carry their open time), buckets are
    left-closed in UTC, and buckets without bars (nights, weekends) are dropped rather than filled.
    ``attrs`` are kept. Raises ``DataError`` when ``rule`` is finer than the data's usual spacing.
    """
    source = str(df.attrs.get("source", "DataFrame"))
    try:
        offset = to_offset(rule)
    except ValueError as e:
        raise DataError(f"invalid resample rule {rule!r} ({e})", source=source) from None
    if isinstance(offset, _END_ANCHORED):
        raise DataError(f"resample rule {rule!r} is anchored at period ends; use the period-start form "
                        "('MS', 'QS', 'YS') so that bars keep their open time", source=source)
    if len(df) > 1:
        spacing = pd.Timedelta(df.index.to_series().diff().median())
        if _length(offset, df.index[0]) < spacing:
            raise DataError(f"resample rule {rule!r} is finer than the data's bar spacing ({spacing}); "
                            "resampling only makes bars coarser", source=source)
    out = df[list(OHLCV)].resample(offset, closed="left", label="left").agg(_AGG)
    # A bucket with no bars has no first open; the summed volume of 0 there is not a real bar.
    out = out[out["open"].notna()].astype("float64")
    out.index.name = "time"
    out.attrs = dict(df.attrs)
    return out
