"""How good were the predictions? Join stored predictions with what the market did afterwards.

A prediction made at bar time t with horizon h is judged against the realised forward return
close[t+h] / close[t] - 1 of its instrument; predictions whose horizon has not passed yet are left
out (and counted as pending). Direction: a regression value's sign, or a classification
probability above 0.5, against the sign of the realised return.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from alphaloop.core.errors import DataError

BUCKETS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0000001)


def realised_returns(predictions: pd.DataFrame, bars: Mapping[str, pd.DataFrame]) -> pd.Series:
    """Forward return for each prediction row (NaN while its horizon has not passed)."""
    out = pd.Series(np.nan, index=predictions.index, dtype=float)
    for instrument, rows in predictions.groupby("instrument"):
        df = bars.get(instrument)
        if df is None:
            continue
        close = df["close"].to_numpy(dtype=float)
        # a prediction time between bars belongs to the last bar at or before it
        pos = df.index.searchsorted(pd.DatetimeIndex(rows["time"]), side="right") - 1
        horizon = rows["horizon"].to_numpy(dtype=int)
        ahead = pos + horizon
        ok = (pos >= 0) & (ahead < len(close))
        values = np.full(len(rows), np.nan)
        values[ok] = close[ahead[ok]] / close[pos[ok]] - 1.0
        out.loc[rows.index] = values
    return out


def accuracy_report(predictions: pd.DataFrame, bars: Mapping[str, pd.DataFrame],
                    by: tuple[str, ...] = ("model", "version")) -> pd.DataFrame:
    """Per group: n judged, n pending, directional hit rate, MAE (regression rows), and the hit rate
    in each confidence bucket (calibration: higher confidence should hit more often)."""
    required = {"instrument", "time", "horizon", "value", "confidence", "task", *by}
    missing = required - set(predictions.columns)
    if missing:
        raise DataError(f"prediction records lack column(s) {', '.join(sorted(missing))}")
    df = predictions.copy()
    df["realised"] = realised_returns(df, bars)
    rows = []
    for key, g in df.groupby(list(by), sort=True):
        judged = g[g["realised"].notna()]
        regression = judged["task"] == "regression"
        predicted_up = np.where(regression, judged["value"] > 0, judged["value"] > 0.5)
        hit = predicted_up == (judged["realised"] > 0)
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row.update(n=len(judged), pending=int(g["realised"].isna().sum()),
                   hit_rate=float(hit.mean()) if len(judged) else np.nan,
                   mae=float((judged.loc[regression, "value"] - judged.loc[regression, "realised"]).abs().mean())
                   if regression.any() else np.nan)
        bucket = pd.cut(judged["confidence"], BUCKETS, right=False, labels=False)
        for b in range(len(BUCKETS) - 1):
            sel = (bucket == b).to_numpy()
            label = f"hit_conf_{BUCKETS[b]:.1f}_{min(BUCKETS[b + 1], 1.0):.1f}"
            row[label] = float(hit[sel].mean()) if sel.any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows)
