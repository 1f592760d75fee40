"""``alphaloop patterns`` on the real sample files, checked against TA-Lib's EMAs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests_cli_helpers import FIXTURES, alphaloop

talib = pytest.importorskip("talib")


@pytest.mark.parametrize("name", ["GOOG_daily.csv", "EURUSD_1h.csv", "BTC-USD_daily.csv"])
def test_patterns_json_on_every_sample_file(tmp_path, name):
    out = alphaloop("patterns", "--data", str(FIXTURES / name), "--json", home=tmp_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc["detectors"]) >= {"ema_cross", "vwap_deviation", "volatility_breakout", "rsi_extremes"}
    assert doc["signals"], "real price data always has some patterns"
    for s in doc["signals"]:
        assert set(s) >= {"bar", "time", "pattern", "direction", "strength", "features"}
        assert 0.0 <= s["strength"] <= 1.0 and s["direction"] in ("long", "short")


def test_ema_cross_signals_are_exactly_talib_crossings(tmp_path):
    path = FIXTURES / "GOOG_daily.csv"
    out = alphaloop("patterns", "--data", str(path), "--detector", "ema_cross:fast=5,slow=20", "--json",
                    home=tmp_path)
    assert out.returncode == 0, out.stderr
    close = np.array([float(r.split(",")[4]) for r in path.read_text().splitlines()[1:]])
    diff = talib.EMA(close, 5) - talib.EMA(close, 20)
    up = np.flatnonzero((diff[1:] > 0) & (diff[:-1] <= 0)) + 1
    down = np.flatnonzero((diff[1:] < 0) & (diff[:-1] >= 0)) + 1
    signals = json.loads(out.stdout)["signals"]
    assert sorted(s["bar"] for s in signals if s["direction"] == "long") == up.tolist()
    assert sorted(s["bar"] for s in signals if s["direction"] == "short") == down.tolist()


@pytest.mark.parametrize("args,code,needle", [
    (["--detector", "nope"], 5, "unknown detector 'nope'"),
    (["--detector", "ema_cross:fast=-2"], 5, "fast"),
    (["--detector", "ema_cross:fast"], 2, "key=value"),
])
def test_bad_detectors(tmp_path, args, code, needle):
    out = alphaloop("patterns", "--data", str(FIXTURES / "GOOG_daily.csv"), *args, home=tmp_path)
    assert out.returncode == code
    assert needle in out.stderr
