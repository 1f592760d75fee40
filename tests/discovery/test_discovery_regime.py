"""Regime features against closed forms on constructed series, and their bad-input errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from alphaloop.discovery.errors import DiscoveryInputError, InsufficientDataError
from alphaloop.discovery.regime import MIN_BARS, REGIME_FEATURES, regime_features


def bars_from_close(close: np.ndarray, half_range: float = 0.002) -> pd.DataFrame:
    idx = pd.date_range("2021-01-01", periods=len(close), freq="D", tz="UTC")
    return pd.DataFrame({"open": close, "high": close * (1 + half_range), "low": close * (1 - half_range),
                         "close": close, "volume": 1000.0}, index=idx)


def test_pure_trend_closed_form() -> None:
    """close_t = 100·g^t with ranges ±h: log returns are ln g, no volatility, a straight path, and
    every bar a higher high and higher low (-DM = 0), so ADX is exactly 100."""
    g, h, n = 1.01, 0.002, 200
    f = regime_features(bars_from_close(100.0 * g ** np.arange(n), h))
    assert list(f) == list(REGIME_FEATURES)
    assert f["drift"] == pytest.approx(math.log(g), rel=1e-12)
    assert f["volatility"] == 0.0
    assert f["efficiency_ratio"] == pytest.approx(1.0, abs=1e-12)
    assert f["trend_strength"] == pytest.approx(1.0, abs=1e-12)
    assert f["autocorrelation"] == 0.0  # constant returns: defined as 0
    assert f["range_rel"] == pytest.approx(2 * h, rel=1e-9)
    assert f["n_bars"] == n


def test_alternating_returns_closed_form() -> None:
    """Log returns +a, -a, +a, ... (an even count): mean 0, sample std a·sqrt(m/(m-1)), lag-1
    autocorrelation -(m-1)/m, and the price ends where it started (efficiency 0)."""
    a, n = 0.01, 201
    m = n - 1
    r = np.tile([a, -a], m // 2)
    close = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(r)]))
    f = regime_features(bars_from_close(close))
    assert f["drift"] == pytest.approx(0.0, abs=1e-15)
    assert f["volatility"] == pytest.approx(a * math.sqrt(m / (m - 1)), rel=1e-9)
    assert f["autocorrelation"] == pytest.approx(-(m - 1) / m, rel=1e-9)
    assert f["efficiency_ratio"] == pytest.approx(0.0, abs=1e-12)


def test_pure_noise_is_trendless() -> None:
    """i.i.d. Gaussian log returns: volatility near sigma, autocorrelation and efficiency within a
    few standard errors of 0, and a trend strength far below a trend's."""
    sigma, n = 0.01, 2001
    rng = np.random.default_rng(7)
    r = rng.normal(0.0, sigma, n - 1)
    close = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(r)]))
    f = regime_features(bars_from_close(close, 0.005))
    se = 1 / math.sqrt(n - 1)
    assert f["volatility"] == pytest.approx(sigma, rel=4 * se * math.sqrt(0.5))  # SE of a sample std: sigma/sqrt(2m)
    assert abs(f["autocorrelation"]) < 4 * se
    # the net move of a random walk is ~sigma·sqrt(n), its path ~sigma·n·sqrt(2/pi)
    assert f["efficiency_ratio"] < 4 * math.sqrt(math.pi / 2) / math.sqrt(n)
    assert f["trend_strength"] < 0.5
    assert f["drift"] == pytest.approx(float(np.mean(r)), abs=1e-15)


def test_deterministic_and_independent_of_scale() -> None:
    rng = np.random.default_rng(1)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, 300)))
    a, b = regime_features(bars_from_close(close)), regime_features(bars_from_close(close))
    scaled = regime_features(bars_from_close(close * 1000))
    assert a == b
    for k in REGIME_FEATURES:
        assert scaled[k] == pytest.approx(a[k], rel=1e-9, abs=1e-12), k


def test_too_short_and_bad_fields() -> None:
    close = np.linspace(100, 110, MIN_BARS - 1)
    with pytest.raises(InsufficientDataError, match=f"at least {MIN_BARS} bars, got {MIN_BARS - 1}"):
        regime_features(bars_from_close(close))
    df = bars_from_close(np.linspace(100, 110, 80))
    with pytest.raises(DiscoveryInputError, match="missing volume"):
        regime_features(df.drop(columns="volume"))
    df.iloc[10, df.columns.get_loc("close")] = -1.0
    with pytest.raises(DiscoveryInputError, match=r"field 'close' must be finite and > 0, got -1\.0 at row 10"):
        regime_features(df)
    with pytest.raises(DiscoveryInputError, match="DataFrame"):
        regime_features([1, 2, 3])  # type: ignore[arg-type]
