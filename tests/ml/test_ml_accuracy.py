"""Prediction accuracy against realised returns, checked by hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphaloop.core.errors import DataError
from alphaloop.ml.accuracy import accuracy_report, realised_returns


def bars(closes):
    index = pd.date_range("2024-01-01", periods=len(closes), freq="D", tz="UTC", name="time")
    return pd.DataFrame({"close": closes}, index=index)


def preds(rows):
    return pd.DataFrame(rows, columns=["model", "version", "instrument", "time", "horizon", "value",
                                       "confidence", "task"])


T = pd.Timestamp("2024-01-01", tz="UTC")
DAY = pd.Timedelta(days=1)


def test_realised_forward_returns_and_pending():
    b = {"X": bars([100.0, 110.0, 99.0, 120.0])}
    p = preds([("m", 1, "X", T, 1, 0.0, 0.5, "regression"),
               ("m", 1, "X", T + DAY + pd.Timedelta(hours=5), 2, 0.0, 0.5, "regression"),  # belongs to bar 1
               ("m", 1, "X", T + 3 * DAY, 1, 0.0, 0.5, "regression")])  # horizon not passed
    r = realised_returns(p, b)
    assert r.iloc[0] == pytest.approx(0.10)
    assert r.iloc[1] == pytest.approx(120 / 110 - 1)
    assert np.isnan(r.iloc[2])


def test_hit_rate_mae_and_calibration():
    b = {"X": bars([100.0, 110.0, 99.0, 120.0, 60.0])}
    p = preds([
        ("m", 1, "X", T, 1, 0.05, 0.9, "regression"),            # up, realised +10%: hit, err 0.05
        ("m", 1, "X", T + DAY, 1, 0.02, 0.9, "regression"),      # up, realised -10%: miss, err 0.12
        ("m", 1, "X", T + 2 * DAY, 1, -0.01, 0.1, "regression"),  # down, realised +21.2%: miss
        ("c", 3, "X", T + 3 * DAY, 1, 0.3, 0.4, "classification"),  # P(up)=0.3 -> down, realised -50%: hit
        ("c", 3, "X", T + 4 * DAY, 1, 0.8, 0.6, "classification"),  # pending
    ])
    rep = accuracy_report(p, b).set_index("model")
    m = rep.loc["m"]
    assert (m["n"], m["pending"]) == (3, 0)
    assert m["hit_rate"] == pytest.approx(1 / 3)
    assert m["mae"] == pytest.approx((0.05 + 0.12 + abs(-0.01 - (120 / 99 - 1))) / 3)
    assert m["hit_conf_0.8_1.0"] == pytest.approx(0.5) and m["hit_conf_0.0_0.2"] == 0.0
    c = rep.loc["c"]
    assert (c["n"], c["pending"], c["hit_rate"]) == (1, 1, 1.0)
    assert np.isnan(c["mae"])


def test_missing_columns_are_named():
    with pytest.raises(DataError, match="horizon"):
        accuracy_report(pd.DataFrame({"model": [], "version": [], "instrument": [], "time": [], "value": [],
                                      "confidence": [], "task": []}), {})
