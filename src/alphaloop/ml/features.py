"""Features and labels from OHLCV bars: the named, versioned feature set ``bars_v1``.

Every feature at bar ``t`` is computed from bars ``0..t`` only (the indicators are causal and the
pandas operations used are shifts and element-wise arithmetic), so a model never sees the future
and the features of the latest bar computed live equal the ones it was trained on. The test suite
proves it: features of the first ``k`` bars equal the first ``k`` rows of the features of all bars.

Features are scale-free (returns, ratios to the close, oscillators in [0, 1], z-scores), so one
model can be trained and used across instruments and price levels. Changing a column's meaning or
order needs a new feature-set name or version: models record the exact :class:`FeatureSchema`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

import alphaloop.indicators as ind
from alphaloop.core.errors import DataError
from alphaloop.core.market import OHLCV
from alphaloop.ml.artifact import FeatureSchema
from alphaloop.ml.errors import SchemaMismatchError, TrainingError

TASKS = ("regression", "classification")

_RETURN_SPANS = (1, 2, 5, 10, 20)
_EMA_SPANS = (10, 20, 50)

FEATURE_SET = FeatureSchema("bars_v1", 1, (
    *(f"ret_{k}" for k in _RETURN_SPANS),  # close[t] / close[t-k] - 1
    "ret_1_lag1", "ret_1_lag2",            # the one-bar return of the two bars before
    "range_rel",                           # (high - low) / close
    "rsi_14",                              # Wilder's RSI / 100
    "atr_14_rel",                          # ATR(14) / close
    "macd_hist_rel",                       # MACD(12, 26, 9) histogram / close
    "bb_pctb_20",                          # Bollinger(20, 2) %B: 0 at the lower band, 1 at the upper
    *(f"ema_gap_{n}" for n in _EMA_SPANS),  # close / EMA(n) - 1
    "vol_10", "vol_20",                    # rolling std of log returns (not annualised)
    "volume_z_20",                         # z-score of log(1 + volume) over 20 bars
    "hour_sin", "hour_cos",                # time of day, cyclical (constant on daily bars)
    "dow_sin", "dow_cos",                  # time of week, cyclical
))

# Rows 0..WARMUP-1 have at least one NaN feature (EMA(50) is the longest); from WARMUP on, valid bars
# give finite features only.
WARMUP = max(_EMA_SPANS) - 1


def make_features(df: pd.DataFrame) -> pd.DataFrame:
    """The ``FEATURE_SET`` columns for every bar of ``df`` (same index), float64, NaN in the warm-up.

    ``df`` is the bar contract of :func:`alphaloop.data.load_bars`: a DatetimeIndex (UTC; naive is
    taken as UTC) and float ``open, high, low, close, volume``. Bad bars raise ``DataError``.
    """
    _check_bars(df)
    # The open is validated but not (yet) a feature of bars_v1.
    h, lo, c, v = (df[col].to_numpy(dtype=np.float64) for col in ("high", "low", "close", "volume"))
    close = pd.Series(c, index=df.index)
    out: dict[str, np.ndarray] = {}
    for k in _RETURN_SPANS:
        out[f"ret_{k}"] = (close / close.shift(k) - 1.0).to_numpy()
    ret_1 = pd.Series(out["ret_1"], index=df.index)
    out["ret_1_lag1"] = ret_1.shift(1).to_numpy()
    out["ret_1_lag2"] = ret_1.shift(2).to_numpy()
    out["range_rel"] = (h - lo) / c
    out["rsi_14"] = ind.rsi(c, 14) / 100.0
    out["atr_14_rel"] = ind.atr(h, lo, c, 14) / c
    out["macd_hist_rel"] = ind.macd(c, 12, 26, 9).hist / c
    upper, _, lower = ind.bbands(c, 20, 2.0, 2.0)
    width = upper - lower
    with np.errstate(divide="ignore", invalid="ignore"):
        pctb = (c - lower) / width
    # A flat window has zero width: the close sits on the (collapsed) middle band.
    out["bb_pctb_20"] = np.where(width == 0.0, 0.5, pctb)
    for n in _EMA_SPANS:
        out[f"ema_gap_{n}"] = c / ind.ema(c, n) - 1.0
    out["vol_10"] = ind.volatility(c, 10)
    out["vol_20"] = ind.volatility(c, 20)
    # log1p tames volume's heavy tail; zscore gives 0 on a window of equal volumes (e.g. FX with none).
    out["volume_z_20"] = ind.zscore(np.log1p(v), 20)
    out.update(_time_features(df.index))
    return pd.DataFrame({col: out[col] for col in FEATURE_SET.columns}, index=df.index, dtype=np.float64)


def make_labels(df: pd.DataFrame, horizon: int, task: str = "regression") -> pd.Series:
    """The label of each bar: the forward return ``close[t + horizon] / close[t] - 1`` (regression)
    or whether it is positive, 1.0 / 0.0 (classification; a flat move counts as not up).

    The last ``horizon`` bars have no future yet: NaN.
    """
    horizon = check_horizon(horizon)
    task = check_task(task)
    if "close" not in getattr(df, "columns", ()):
        raise DataError("bars lack column 'close'", source=_source(df), field="close")
    close = df["close"].astype(np.float64)
    fwd = close.shift(-horizon) / close - 1.0
    if task == "classification":
        fwd = (fwd > 0.0).astype(np.float64).where(fwd.notna())
    return fwd.rename("label")


def feature_row(df: pd.DataFrame) -> pd.Series:
    """The features of the last bar of ``df`` (indexed by column name, named by the bar's time).

    Computed over the whole of ``df`` because EMAs and Wilder averages remember all history: the
    value equals the training row of that bar exactly. Fewer than ``WARMUP + 1`` bars raise
    ``DataError``.
    """
    if len(df) <= WARMUP:
        raise DataError(f"need at least {WARMUP + 1} bars for the features of {FEATURE_SET.name} "
                        f"v{FEATURE_SET.version}, got {len(df)}", source=_source(df))
    row = make_features(df).iloc[-1]
    bad = [col for col, x in row.items() if not math.isfinite(x)]
    if bad:
        raise DataError(f"features {', '.join(bad)} are not finite at the last bar ({row.name})",
                        source=_source(df))
    return row


def features_for(schema: FeatureSchema, df: pd.DataFrame) -> pd.DataFrame:
    """The features a model with ``schema`` expects, or ``SchemaMismatchError`` if this code does not
    produce that feature set (an unknown name/version, or columns in another order)."""
    if schema != FEATURE_SET:
        raise SchemaMismatchError(
            f"model wants feature set {schema.name} v{schema.version} with {len(schema.columns)} columns; "
            f"this alphaloop makes {FEATURE_SET.name} v{FEATURE_SET.version} with {len(FEATURE_SET.columns)}")
    return make_features(df)


def check_horizon(horizon: object) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise TrainingError(f"horizon must be a whole number of bars >= 1, got {horizon!r}")
    return int(horizon)


def check_task(task: object) -> str:
    if task not in TASKS:
        raise TrainingError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    return str(task)


def _source(df: object) -> str:
    attrs = getattr(df, "attrs", {}) or {}
    return str(attrs.get("instrument") or attrs.get("source") or "DataFrame")


def _check_bars(df: pd.DataFrame) -> None:
    """Refuse what would silently poison features: NaN/inf prices, non-positive closes, bad times."""
    source = _source(df)
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a DataFrame of bars, got {type(df).__name__}", source="bars")
    missing = [col for col in OHLCV if col not in df.columns]
    if missing:
        raise DataError(f"bars lack column(s) {', '.join(missing)}", source=source, field=missing[0])
    if not isinstance(df.index, pd.DatetimeIndex):
        raise DataError(f"bars must be indexed by time (DatetimeIndex), not {type(df.index).__name__}",
                        source=source)
    if len(df) > 1 and not df.index.is_monotonic_increasing:
        pos = int(np.flatnonzero(np.diff(df.index.asi8) < 0)[0]) + 1
        raise DataError(f"bar times must increase; {df.index[pos]} at row {pos} comes after "
                        f"{df.index[pos - 1]}", source=source)
    for col in OHLCV:
        x = df[col].to_numpy(dtype=np.float64)
        bad = ~np.isfinite(x)
        if col == "close":
            bad |= x <= 0.0
        elif col == "volume":
            bad |= x < 0.0
        if bad.any():
            pos = int(np.argmax(bad))
            want = {"close": "a finite price > 0", "volume": "a finite volume >= 0"}.get(col, "a finite price")
            raise DataError(f"expected {want}, got {x[pos]} at row {pos} ({df.index[pos]})",
                            source=source, field=col)


def _time_features(index: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    idx = index.tz_convert("UTC") if index.tz is not None else index
    day_frac = (idx.hour.to_numpy() * 3600 + idx.minute.to_numpy() * 60 + idx.second.to_numpy()) / 86400.0
    week_frac = (idx.day_of_week.to_numpy() + day_frac) / 7.0
    two_pi = 2.0 * math.pi
    return {"hour_sin": np.sin(two_pi * day_frac), "hour_cos": np.cos(two_pi * day_frac),
            "dow_sin": np.sin(two_pi * week_frac), "dow_cos": np.cos(two_pi * week_frac)}


__all__ = [
    "FEATURE_SET",
    "TASKS",
    "WARMUP",
    "check_horizon",
    "check_task",
    "feature_row",
    "features_for",
    "make_features",
    "make_labels",
]
