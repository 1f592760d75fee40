"""Value encodings between domain objects and database columns.

Arrays go in as little-endian numpy bytes compressed with zlib: compact, exact to the bit, portable
across SQLite and PostgreSQL, and (unlike pickle) safe to read from a database someone else wrote.
JSON goes in sanitised: PostgreSQL's ``json`` type rejects ``NaN``/``Infinity`` tokens, so
non-finite floats become the strings ``"nan"``, ``"inf"``, ``"-inf"`` and metrics decode them back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import zlib
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import numpy as np
import pandas as pd

UTC = dt.UTC

# Explicit byte order so a database written on one machine reads the same on any other.
_INT64 = np.dtype("<i8")
_FLOAT64 = np.dtype("<f8")
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def pack_int64(values: Any) -> bytes:
    return zlib.compress(np.ascontiguousarray(values, dtype=_INT64).tobytes())


def pack_float64(values: Any) -> bytes:
    return zlib.compress(np.ascontiguousarray(values, dtype=_FLOAT64).tobytes())


def unpack(blob: bytes, dtype: str, n: int, what: str) -> np.ndarray:
    """Decode a packed array and check it holds the ``n`` values the row says it does."""
    arr = np.frombuffer(zlib.decompress(blob), dtype=_INT64 if dtype == "int64" else _FLOAT64)
    if arr.size != n:
        raise ValueError(f"{what}: expected {n} values, found {arr.size}")
    return arr.astype(arr.dtype.newbyteorder("="))  # native order, writable copy


def jsonable(obj: Any) -> Any:
    """A JSON-safe copy of ``obj``: numpy scalars unwrapped, times as ISO strings, non-finite floats tagged.

    Types JSON cannot hold (tuples, sets, paths, timestamps) come back as lists and strings.
    """
    if obj is None or isinstance(obj, bool | str | int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return sorted((jsonable(v) for v in obj), key=repr)
    if isinstance(obj, enum.Enum):
        return jsonable(obj.value)
    if isinstance(obj, pd.Timestamp | dt.datetime | dt.date | dt.time):
        return obj.isoformat()
    if isinstance(obj, pd.Timedelta | dt.timedelta):
        return str(obj)
    if isinstance(obj, PurePath):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj))
    return str(obj)


def decode_metrics(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Undo the non-finite tagging of :func:`jsonable` for a float-valued metrics mapping."""
    return {k: _NONFINITE.get(v, v) if isinstance(v, str) else v for k, v in raw.items()}


def real(value: Any) -> float | None:
    """A float for a queryable column; NaN becomes NULL.

    PostgreSQL sorts NaN above every number (so ``ORDER BY sharpe DESC`` would rank a NaN Sharpe
    first) and SQLite silently stores NaN as NULL; NULL gives both the same, intended meaning.
    """
    if value is None:
        return None
    f = float(value)
    return None if math.isnan(f) else f


def utc_datetime(value: Any) -> dt.datetime | None:
    """A timezone-aware UTC ``datetime`` (naive input is taken to be UTC, as everywhere in alphaloop)."""
    if value is None or pd.isna(value):  # None, NaN and NaT all mean "no time"
        return None
    ts = pd.Timestamp(value)
    ts = ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)
    return ts.to_pydatetime(warn=False)  # drops sub-microsecond digits: the databases keep microseconds
