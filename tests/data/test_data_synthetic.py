"""generate_bars: determinism, validity for any seed and length, and the statistics of each regime.

The statistical checks compare with closed forms: an AR(1) log price with coefficient phi has
return autocorrelation -(1 - phi) / 2 and variance ratio VR(k) = (1 - phi**k) / (k (1 - phi)), a
random walk has VR = 1, and GARCH(1,1) squared returns are positively autocorrelated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaloop.data import REGIMES, generate_bars, validate_bars
from alphaloop.data.synthetic import _linear_recurrence


def log_returns(df: pd.DataFrame) -> np.ndarray:
    return np.diff(np.log(df["close"].to_numpy()))


def autocorr(x: np.ndarray, lag: int = 1) -> float:
    return float(np.corrcoef(x[lag:], x[:-lag])[0, 1])


def variance_ratio(df: pd.DataFrame, k: int) -> float:
    x = np.log(df["close"].to_numpy())
    return float(np.var(x[k:] - x[:-k]) / (k * np.var(np.diff(x))))


@pytest.mark.parametrize("regime", REGIMES)
def test_same_seed_same_bytes(regime: str) -> None:
    a = generate_bars(3000, seed=42, regime=regime, freq="1min")
    b = generate_bars(3000, seed=42, regime=regime, freq="1min")
    assert a.to_numpy().tobytes() == b.to_numpy().tobytes()
    assert a.index.asi8.tobytes() == b.index.asi8.tobytes()
    assert a.attrs == b.attrs
    c = generate_bars(3000, seed=43, regime=regime, freq="1min")
    assert not np.array_equal(a["close"].to_numpy(), c["close"].to_numpy())


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 600), seed=st.integers(0, 2**64 - 1), regime=st.sampled_from(REGIMES),
       freq=st.sampled_from(["1D", "1h", "1min", "B"]), start_price=st.floats(0.01, 1e5))
def test_bars_are_valid(n: int, seed: int, regime: str, freq: str, start_price: float) -> None:
    df = generate_bars(n, seed=seed, regime=regime, freq=freq, start_price=start_price, instrument="X")
    validate_bars(df, "synthetic")  # the loader's own contract
    assert len(df) == n and list(df.columns) == ["open", "high", "low", "close", "volume"]
    assert (df.dtypes == np.float64).all() and df.index.name == "time" and str(df.index.tz) == "UTC"
    o, h, lo, c, v = (df[k].to_numpy() for k in df.columns)
    assert np.all(h >= np.maximum(o, c)) and np.all(lo <= np.minimum(o, c)) and np.all(lo > 0)
    assert np.all(v >= 0) and np.all(v == np.rint(v))
    assert o[0] == start_price and np.array_equal(o[1:], c[:-1])  # open is the previous close
    assert df.attrs["instrument"] == "X"


def test_index_follows_start_and_freq() -> None:
    df = generate_bars(3, seed=1, start="2021-05-03 09:30", freq="15min")
    assert [t.isoformat() for t in df.index] == [
        "2021-05-03T09:30:00+00:00", "2021-05-03T09:45:00+00:00", "2021-05-03T10:00:00+00:00"]
    aware = generate_bars(1, seed=1, start=pd.Timestamp("2021-05-03 09:30", tz="America/New_York"))
    assert aware.index[0] == pd.Timestamp("2021-05-03 13:30", tz="UTC")


@pytest.mark.parametrize("kwargs, words", [
    ({"n": 0}, "at least 1"), ({"regime": "chaos"}, "unknown regime"), ({"start_price": 0.0}, "positive"),
    ({"n": 200_000}, "2262")])
def test_bad_arguments(kwargs: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        generate_bars(**({"n": 10, "seed": 1} | kwargs))


def test_linear_recurrence_matches_the_loop() -> None:
    rng = np.random.default_rng(0)
    # growth then decay strong enough to cut the series into many blocks (|log P| > 300 each)
    a, b = rng.uniform(0.3, 1.4, 20_000), rng.normal(size=20_000)
    a[:5000] = rng.uniform(1.0, 1.02, 5000)
    x, expected = 0.7, np.empty(len(a))
    for i in range(len(a)):
        x = a[i] * x + b[i]
        expected[i] = x
    np.testing.assert_allclose(_linear_recurrence(a, b, 0.7), expected, rtol=1e-9, atol=1e-9)


def test_trend_has_significant_drift() -> None:
    for seed in range(3):
        r = log_returns(generate_bars(20_000, seed=seed, regime="trend"))
        t_stat = r.mean() / (r.std() / np.sqrt(len(r)))
        assert abs(t_stat) > 5, (seed, t_stat)
        assert abs(autocorr(r**2)) < 0.05  # no volatility clustering


def test_mean_revert_matches_ar1() -> None:
    phi = 0.5 ** (1 / 20)
    df = generate_bars(200_000, seed=5, regime="mean_revert", freq="1h")
    r = log_returns(df)
    assert autocorr(r) == pytest.approx(-(1 - phi) / 2, abs=0.008)
    assert autocorr(r) < -0.008
    expected_vr = (1 - phi**100) / (100 * (1 - phi))
    assert variance_ratio(df, 100) == pytest.approx(expected_vr, abs=0.06)
    random_walk = generate_bars(200_000, seed=5, regime="vol_cluster", freq="1h")
    assert variance_ratio(random_walk, 100) > 0.8 > 2 * variance_ratio(df, 100)


def test_vol_cluster_squared_returns_are_autocorrelated() -> None:
    for seed in range(3):
        r = log_returns(generate_bars(50_000, seed=seed, regime="vol_cluster"))
        assert autocorr(r**2) > 0.12, seed
        assert abs(autocorr(r)) < 0.03, seed
        kurtosis = np.mean((r - r.mean()) ** 4) / r.var() ** 2
        assert kurtosis > 3.5, seed  # fat tails, unlike the Gaussian regimes


def test_mixed_switches_regimes() -> None:
    df = generate_bars(50_000, seed=3, regime="mixed")
    r = log_returns(df)
    assert autocorr(r**2) > 0.03  # GARCH blocks and volatility changes between blocks
    assert variance_ratio(df, 100) < 0.97  # mean-reverting blocks pull the ratio below a random walk
    for other in ("trend", "mean_revert", "vol_cluster"):
        assert not np.allclose(df["close"], generate_bars(50_000, seed=3, regime=other)["close"])
