"""Loading OHLCV bars from CSV, Parquet or a DataFrame into the one shape the platform uses.

The output contract (the backtester and every indicator rely on it, so it is checked here once
instead of in the hot loop): a ``DatetimeIndex`` named ``time``, UTC, nanosecond unit, strictly
increasing; float64 columns exactly ``open, high, low, close, volume``; ``attrs["instrument"]`` and
``attrs["source"]``.

Headers are matched case-insensitively, so Yahoo exports (``Date,...,Adj Close,Volume``; ``Adj Close``
is ignored), pandas ``to_csv`` output (empty first header cell), MetaTrader exports (``<DATE>,<TIME>``)
and hand-written files all load without options.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from alphaloop.core.errors import DataError
from alphaloop.core.market import OHLCV
from alphaloop.data.validation import Checks, to_float, validate_bars

Source = str | os.PathLike[str] | pd.DataFrame

PARQUET_SUFFIXES = (".parquet", ".pq")
# Tried in this order; a "date" + "time" pair wins over a lone "time" or "date" (see _pick_time).
_TIME_NAMES_STRONG = ("datetime", "timestamp", "date_time", "datetime_utc", "timestamp_utc")
_TIME_NAMES_WEAK = ("time", "date", "open_time", "ts")
_VOLUME_NAMES = ("volume", "vol", "tick_volume", "tickvol")
_UNNAMED = re.compile(r"Unnamed: \d+(_level_\d+)?")
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _norm(name: Any) -> str:
    """Canonical column name: ``" Adj Close"`` -> ``adj_close``, ``<TICKVOL>`` -> ``tickvol``.

    The empty first header cell of pandas ``to_csv`` output reads as ``Unnamed: 0``; it maps to "".
    """
    s = str(name)
    if _UNNAMED.fullmatch(s):
        return ""
    s = s.strip().strip("<>").strip().lower()
    return re.sub(r"[\s\-]+", "_", s)


# ---------------------------------------------------------------------------------------------
# reading


def _read_csv(path: Path, source: str, time_column: str | None) -> pd.DataFrame:
    try:
        header = pd.read_csv(path, nrows=0, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DataError("file is empty (expected a header line)", source=source, line=1) from None
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text ({e.reason} at byte {e.start})", source=source) from None
    except OSError as e:
        raise DataError(f"cannot read file ({e.strerror or e})", source=source) from None
    # A separate time-of-day column stays text so that "0930" keeps its leading zero. Only then:
    # forcing text dtype makes pandas' reader about three times slower.
    norms = {_norm(c): c for c in header.columns}
    pair = "date" in norms and "time" in norms and not any(n in norms for n in _TIME_NAMES_STRONG)
    text_cols = {norms["date"]: str, norms["time"]: str} if pair and time_column is None else None
    try:
        # skip_blank_lines=False keeps row i on line i + 2, so errors can name the exact line.
        with warnings.catch_warnings():
            # Mixed types across the reader's chunks: every column is converted and checked below.
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            return pd.read_csv(path, encoding="utf-8-sig", skip_blank_lines=False, dtype=text_cols)
    except pd.errors.ParserError as e:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
        if m:
            raise DataError(f"expected {m[1]} fields as in the header, found {m[3]}",
                            source=source, line=int(m[2])) from None
        raise DataError(f"not a valid CSV file ({e})", source=source) from None
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text ({e.reason} at byte {e.start})", source=source) from None


def _read_parquet(path: Path, source: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"cannot read Parquet file ({type(e).__name__}: {e})", source=source) from None


# ---------------------------------------------------------------------------------------------
# columns


def _columns(raw: pd.DataFrame) -> tuple[list[tuple[str, pd.Series]], bool]:
    """All columns as (original name, series with a RangeIndex), the index first when it holds data.

    Returns also whether that index is a DatetimeIndex (a frame already indexed by time).
    """
    entries: list[tuple[str, pd.Series]] = []
    index_is_time = False
    unnamed_numbers = raw.index.name is None and pd.api.types.is_numeric_dtype(raw.index.dtype)
    if not isinstance(raw.index, pd.RangeIndex) and not unnamed_numbers:
        # A meaningful index: a DataFrame indexed by time, a Parquet file written from one, or a CSV
        # whose header is one field short (pandas then uses the first column as the index). An
        # unnamed integer index is only row numbers left over from filtering, never times.
        name = raw.index.name
        entries.append(("" if name is None else str(name), pd.Series(raw.index, copy=False).reset_index(drop=True)))
        index_is_time = isinstance(raw.index, pd.DatetimeIndex)
    for j, c in enumerate(raw.columns):
        entries.append((str(c), raw.iloc[:, j].reset_index(drop=True)))
    return entries, index_is_time


def _pick_time(entries: list[tuple[str, pd.Series]], index_is_time: bool, time_column: str | None,
               source: str, header_line: int | None) -> list[int]:
    """Positions in ``entries`` of the time column, or of a (date, time) pair."""
    norms = [_norm(n) for n, _ in entries]
    found = ", ".join(repr(n) for n, _ in entries)
    if time_column is not None:
        for want in (lambda i: entries[i][0] == time_column, lambda i: norms[i] == _norm(time_column)):
            hits = [i for i in range(len(entries)) if want(i)]
            if hits:
                return hits[:1]
        raise DataError(f"time column {time_column!r} not found; found: {found}",
                        source=source, line=header_line, field=time_column)
    if index_is_time:
        return [0]
    for n in _TIME_NAMES_STRONG:
        if n in norms:
            return [norms.index(n)]
    if "date" in norms and "time" in norms:
        return [norms.index("date"), norms.index("time")]
    for n in _TIME_NAMES_WEAK:
        if n in norms:
            return [norms.index(n)]
    if entries and norms[0] in ("", "index"):
        return [0]
    raise DataError("no time column: expected one named date, datetime, time or timestamp, a "
                    f"date + time pair, or an unnamed first column (or pass time_column=); found: {found}",
                    source=source, line=header_line, field=None)


def _pick_values(entries: list[tuple[str, pd.Series]], source: str,
                 header_line: int | None) -> dict[str, int | None]:
    """Positions in ``entries`` of open, high, low, close and (optional) volume."""
    norms = [_norm(n) for n, _ in entries]
    wanted = {c: (c,) for c in OHLCV[:4]} | {"volume": _VOLUME_NAMES}
    picked: dict[str, int | None] = {}
    for col, names in wanted.items():
        for n in names:
            hits = [i for i, m in enumerate(norms) if m == n]
            if len(hits) > 1:
                raise DataError(f"columns {' and '.join(repr(entries[i][0]) for i in hits)} both mean "
                                f"'{col}'; keep one", source=source, line=header_line, field=col)
            if hits:
                picked[col] = hits[0]
                break
        else:
            picked[col] = None
    missing = [c for c in OHLCV[:4] if picked[c] is None]
    if missing:
        found = ", ".join(repr(n) for n, _ in entries) or "(none)"
        raise DataError(f"missing required column(s) {', '.join(missing)}; found: {found}",
                        source=source, line=header_line, field=missing[0])
    return picked


# ---------------------------------------------------------------------------------------------
# time


def _epoch_or_yyyymmdd(values: pd.Series) -> pd.DatetimeIndex:
    """Numbers as times: YYYYMMDD dates (naive, local) or unix epoch in s, ms, us or ns (UTC).

    The unit is chosen from the magnitude: 1e11 seconds is the year 5138 while 1e11 ms is 1973, so
    the ranges do not overlap for any plausible market data.
    """
    # Integers stay int64: ns epochs do not fit a float64 exactly.
    is_int = pd.api.types.is_integer_dtype(values.dtype) and not values.isna().any()
    x = values.to_numpy(dtype="int64") if is_int else values.to_numpy(dtype="float64", na_value=np.nan)
    finite = x if is_int else x[np.isfinite(x)]
    if finite.size == 0:
        return pd.DatetimeIndex(np.full(len(x), np.datetime64("NaT", "ns")))
    if np.all(finite == np.floor(finite)) and finite.min() >= 1900_01_01 and finite.max() <= 2100_12_31:
        text = pd.Series(x).astype("Int64").astype("string")
        return pd.DatetimeIndex(pd.to_datetime(text, format="%Y%m%d", errors="coerce"))
    biggest = float(np.abs(finite).max())
    unit = "s" if biggest < 1e11 else "ms" if biggest < 1e14 else "us" if biggest < 1e17 else "ns"
    return pd.DatetimeIndex(pd.to_datetime(x, unit=unit, utc=True, errors="coerce"))


def _to_datetime(text: pd.Series, **kw: Any) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "could not infer format": we check NaT ourselves
        try:
            return pd.to_datetime(text, errors="coerce", **kw)
        except ValueError:  # mixed UTC offsets in one column
            return pd.to_datetime(text, errors="coerce", utc=True, **kw)


def _arrow_iso(text: pd.Series) -> pd.DatetimeIndex | None:
    """Clean ISO 8601 text parsed by pyarrow's cast, ten times faster than pandas on millions of rows.

    None when any value does not fit (then pandas parses, and finds the offending rows).
    """
    if not (isinstance(text.dtype, pd.StringDtype) and text.dtype.storage == "pyarrow"):
        return None
    arr = pa.array(text.array)
    for typ in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):  # naive, then with offsets
        try:
            return pd.DatetimeIndex(pc.cast(arr, typ).to_pandas())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return None


def _from_text(text: pd.Series, present: np.ndarray) -> pd.DatetimeIndex:
    """Strings as times: ISO 8601 first (fast, unambiguous), else pandas' format inference."""
    fast = _arrow_iso(text)
    if fast is not None:
        return fast
    if pd.api.types.is_string_dtype(text.dtype):
        text = text.str.strip()
    iso = _to_datetime(text, format="ISO8601")
    iso_bad = int((iso.isna().to_numpy() & present).sum())
    if iso_bad == 0:
        return pd.DatetimeIndex(iso)
    guess = _to_datetime(text)
    guess_bad = int((guess.isna().to_numpy() & present).sum())
    return pd.DatetimeIndex(guess if guess_bad < iso_bad else iso)


def _parse_time(parts: list[pd.Series], tz: str, field: str, checks: Checks) -> pd.DatetimeIndex:
    """The time column(s) as a UTC DatetimeIndex; rows that fail are registered with ``checks``."""
    if len(parts) == 2:  # separate date and time columns
        d, t = (p.astype("string").str.strip() for p in parts)
        s = d + " " + t
    else:
        s = parts[0]
    present = ~np.asarray(pd.isna(s))
    checks.add(~present, field, lambda i: "missing timestamp")
    if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(s.dtype):
        parsed = pd.DatetimeIndex(s)
    elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        parsed = _epoch_or_yyyymmdd(s)
    elif present.any() and _NUMBER.fullmatch(str(s.iloc[int(np.argmax(present))])):
        # Numbers stored as text (a mixed column read as text): judged by the first value, since
        # converting a whole text column just to look costs more than parsing it.
        parsed = _epoch_or_yyyymmdd(pd.to_numeric(s, errors="coerce"))
    else:
        parsed = _from_text(s, present)
    checks.add(np.asarray(parsed.isna()) & present, field,
               lambda i: f"cannot parse {s.iloc[i]!r} as a date/time")
    if parsed.tz is None:
        try:
            parsed = parsed.tz_localize(tz, ambiguous="infer", nonexistent="raise")
        except Exception:  # an hour skipped or repeated by a daylight-saving change
            local = parsed
            parsed = local.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
            bad = np.asarray(parsed.isna()) & np.asarray(local.notna())
            checks.add(bad, field, lambda i: f"local time {local[i]} does not exist or is ambiguous in "
                                             f"time zone {tz} (daylight-saving change)")
    try:
        return parsed.tz_convert("UTC").as_unit("ns").rename("time")
    except (pd.errors.OutOfBoundsDatetime, OverflowError):
        years = parsed.year
        out = np.asarray((years < 1678) | (years > 2261))
        checks.add(out, field, lambda i: f"time {parsed[i]} is outside the supported years 1678-2261")
        checks.raise_first()
        raise


# ---------------------------------------------------------------------------------------------
# public


def load_bars(source: Source, *, instrument: str | None = None, time_column: str | None = None,
              tz: str | None = None) -> pd.DataFrame:
    """Load and validate bars from a CSV path, a Parquet path (.parquet/.pq) or a DataFrame.

    ``time_column`` names the time column when it is not one of the usual names. Naive timestamps
    are local times in ``tz`` (default UTC); timestamps with an offset and unix epochs are absolute
    and ignore it. Raises ``DataError`` naming the file, line (header = line 1) and field of the
    first problem; nothing is sorted, dropped or filled silently (only trailing blank lines go).
    """
    tz = tz or "UTC"
    if isinstance(source, pd.DataFrame):
        name, first_line, raw = "DataFrame", None, source
        inst = instrument or source.attrs.get("instrument") or "DataFrame"
    else:
        name = os.fspath(source)
        path = Path(name)
        inst = instrument or path.stem
        if not path.is_file():
            raise DataError("file not found" if not path.exists() else "not a file", source=name)
        if path.suffix.lower() in PARQUET_SUFFIXES:
            raw, first_line = _read_parquet(path, name), None
        else:
            raw, first_line = _read_csv(path, name, time_column), 2
    try:
        pd.Timestamp("2000-01-01").tz_localize(tz)
    except Exception:
        raise DataError(f"unknown time zone {tz!r}", source=name) from None
    header_line = None if first_line is None else first_line - 1

    entries, index_is_time = _columns(raw)
    time_pos = _pick_time(entries, index_is_time, time_column, name, header_line)
    value_pos = _pick_values(entries, name, header_line)

    n = len(raw)
    checks = Checks(name, first_line)
    if first_line is not None and n:
        # Blank lines read as all-missing rows: trailing ones are harmless, others are errors.
        blank = np.logical_and.reduce([np.asarray(pd.isna(s)) for _, s in entries])
        n = int(len(blank) - np.argmax(~blank[::-1])) if not blank.all() else 0
        checks.add(blank[:n], None, lambda i: "empty line (no values)")
        entries = [(k, s.iloc[:n]) for k, s in entries]
    if n == 0:
        raise DataError("no data rows" + (" (only a header)" if first_line is not None else ""),
                        source=name, line=first_line)

    fields = {c: entries[i][0] for c, i in value_pos.items() if i is not None}
    time_field = "+".join(entries[i][0] for i in time_pos) or "time"
    fields["time"] = time_field
    values = {c: (to_float(entries[i][1], fields[c], checks) if i is not None else np.zeros(n))
              for c, i in value_pos.items()}
    index = _parse_time([entries[i][1] for i in time_pos], tz, time_field, checks)
    checks.raise_first()

    frame = pd.DataFrame(values, index=index, columns=list(OHLCV), copy=False)
    validate_bars(frame, name, first_line=first_line, fields=fields)
    frame.attrs = {"instrument": str(inst), "source": name}
    return frame


def load_many(sources: Iterable[Source] | Mapping[str, Source], *, time_column: str | None = None,
              tz: str | None = None) -> dict[str, pd.DataFrame]:
    """Load several sources keyed by instrument (a mapping's keys name them; else each file's stem).

    Two sources with the same instrument name are an error: silently keeping one would lose data.
    """
    items = (list(sources.items()) if isinstance(sources, Mapping)
             else [(None, s) for s in sources])
    out: dict[str, pd.DataFrame] = {}
    for inst, src in items:
        df = load_bars(src, instrument=inst, time_column=time_column, tz=tz)
        key = df.attrs["instrument"]
        if key in out:
            raise DataError(f"instrument {key!r} is loaded twice (also from {out[key].attrs['source']}); "
                            "give each source its own instrument name", source=df.attrs["source"])
        out[key] = df
    return out
