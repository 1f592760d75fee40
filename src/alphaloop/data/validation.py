"""Validation of OHLCV bars, done once when data enters the platform.

Every check is a numpy mask over the whole column (files can hold millions of rows); when several
checks fail, the error reports the earliest offending row, so fixing a file top to bottom works.

Rows are located for the user as a 1-based file line (``first_line`` is the line of row 0: 2 for a
CSV with one header line) or, for in-memory frames and Parquet, as ``row N`` (0-based position,
what ``df.iloc[N]`` shows) in the message with ``line=None``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from alphaloop.core.errors import DataError
from alphaloop.core.market import OHLCV

PRICES = OHLCV[:4]


def fail_at(pos: int, message: str, *, source: str, first_line: int | None,
            field: str | None) -> DataError:
    """A DataError for row ``pos`` (0-based), located as a file line or as ``row N``."""
    if first_line is None:
        return DataError(f"row {pos}: {message}", source=source, line=None, field=field)
    return DataError(message, source=source, line=first_line + pos, field=field)


class Checks:
    """Collects failing-row masks and raises for the earliest failing row.

    Ties on the same row go to the check added first, so add them in order of importance
    (a missing value before "high below low", which a missing value would also cause).
    """

    def __init__(self, source: str, first_line: int | None):
        self.source, self.first_line = source, first_line
        self._first: list[tuple[int, int, str | None, Callable[[int], str]]] = []

    def add(self, mask: np.ndarray, field: str | None, describe: Callable[[int], str],
            offset: int = 0) -> None:
        """``mask[i]`` true means row ``i + offset`` fails; ``describe(row)`` says why."""
        if mask.any():
            pos = int(np.argmax(mask)) + offset
            self._first.append((pos, len(self._first), field, describe))

    def raise_first(self) -> None:
        if self._first:
            pos, _, field, describe = min(self._first, key=lambda t: (t[0], t[1]))
            raise fail_at(pos, describe(pos), source=self.source, first_line=self.first_line,
                          field=field)


def to_float(values: pd.Series, field: str, checks: Checks) -> np.ndarray:
    """Column as float64; text that is not a number is registered as a failure (blank stays NaN)."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy(dtype="float64", na_value=np.nan)
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    bad = np.isnan(numbers) & values.notna().to_numpy()
    checks.add(bad, field, lambda i: f"non-numeric value {values.iloc[i]!r} (expected a number)")
    return numbers


def _fmt_time(t: pd.Timestamp) -> str:
    return t.isoformat()


def validate_bars(df: pd.DataFrame, source: str, *, first_line: int | None = None,
                  fields: Mapping[str, str] | None = None) -> None:
    """Raise ``DataError`` unless ``df`` meets the bar contract.

    The contract: a UTC ``DatetimeIndex`` strictly increasing (never sorted here: an unsorted
    file usually means a broken export), columns ``open, high, low, close, volume`` numeric,
    finite positive prices with ``low <= open, close <= high``, non-negative volume.
    ``fields`` maps contract names to the column names the user sees (``{"high": "High"}``).
    """
    fields = dict(fields or {})

    def name(col: str) -> str:
        return fields.get(col, col)

    found = [str(c) for c in df.columns]
    missing = [c for c in OHLCV if c not in df.columns]
    if missing:
        raise DataError(f"missing required column(s) {', '.join(missing)}; found: "
                        f"{', '.join(found) if found else '(none)'}",
                        source=source, line=None if first_line is None else first_line - 1,
                        field=missing[0])
    if len(df) == 0:
        raise DataError("no data rows", source=source, line=first_line, field=None)
    if not isinstance(df.index, pd.DatetimeIndex) or df.index.tz is None:
        raise DataError(f"index must be a tz-aware DatetimeIndex, got {type(df.index).__name__}"
                        f"{'' if not isinstance(df.index, pd.DatetimeIndex) else ' without a time zone'}",
                        source=source, line=None, field=name("time"))
    if str(df.index.tz) != "UTC":  # one zone everywhere: bars from two sources must line up
        raise DataError(f"index must be in UTC, got {df.index.tz}; convert with df.tz_convert('UTC')",
                        source=source, line=None, field=name("time"))

    checks = Checks(source, first_line)
    cols = {c: to_float(df[c], name(c), checks) for c in OHLCV}
    checks.raise_first()  # values that are not numbers make every later message misleading

    times = df.index
    nat = np.asarray(times.isna())
    checks.add(nat, name("time"), lambda i: "missing timestamp")
    if len(times) > 1:
        ns = times.as_unit("ns").asi8
        step = np.diff(ns)
        both = ~(nat[1:] | nat[:-1])

        def prev(i: int) -> str:
            return f"line {first_line + i - 1}" if first_line is not None else f"row {i - 1}"

        checks.add(both & (step == 0), name("time"),
                   lambda i: f"duplicate timestamp {_fmt_time(times[i])} (same as {prev(i)})", offset=1)
        checks.add(both & (step < 0), name("time"),
                   lambda i: f"timestamp {_fmt_time(times[i])} is earlier than {_fmt_time(times[i - 1])} "
                             f"on {prev(i)}; bars must be in strictly increasing time order "
                             f"(data is not sorted automatically)", offset=1)

    for c in PRICES:
        v = cols[c]
        checks.add(~np.isfinite(v), name(c),
                   lambda i, v=v: "missing price" if np.isnan(v[i]) else f"price {v[i]} is not finite")
        checks.add(v <= 0, name(c), lambda i, v=v, c=c: f"{c} {v[i]:g} is not positive")
    o, h, lo, cl, vol = (cols[c] for c in OHLCV)
    checks.add(h < lo, name("high"), lambda i: f"high {h[i]:g} is below low {lo[i]:g}")
    for c, v in (("open", o), ("close", cl)):
        checks.add((v < lo) | (v > h), name(c),
                   lambda i, c=c, v=v: f"{c} {v[i]:g} is outside the bar's range [low {lo[i]:g}, high {h[i]:g}]")
    checks.add(np.isnan(vol), name("volume"), lambda i: "missing volume")
    checks.add(vol < 0, name("volume"), lambda i: f"volume {vol[i]:g} is negative")
    checks.raise_first()

