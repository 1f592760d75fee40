"""Features and labels: no look-ahead (prefix property), values against TA-Lib and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphaloop.core.errors import DataError
from alphaloop.ml.artifact import FeatureSchema
from alphaloop.ml.errors import SchemaMismatchError, TrainingError
from alphaloop.ml.features import (
    FEATURE_SET,
    WARMUP,
    feature_row,
    features_for,
    make_features,
    make_labels,
)

# ---------------------------------------------------------------------- random bars


@st.composite
def bars(draw, max_size: int = 140) -> pd.DataFrame:
    """Consistent OHLCV bars: a positive random walk with flat stretches, zero volumes, intraday
    times crossing day and week boundaries."""
    step = st.one_of(st.just(0.0), st.floats(-0.06, 0.06, allow_nan=False, allow_subnormal=False))
    steps = np.asarray(draw(st.lists(step, min_size=0, max_size=max_size)), dtype=float)
    n = len(steps)
    close = draw(st.floats(0.5, 5e4)) * np.cumprod(1.0 + steps)
    frac = st.floats(0.0, 0.03, allow_nan=False, allow_subnormal=False)
    up = np.asarray(draw(st.lists(frac, min_size=n, max_size=n)), dtype=float)
    down = np.asarray(draw(st.lists(frac, min_size=n, max_size=n)), dtype=float)
    volume = np.asarray(draw(st.lists(st.one_of(st.just(0.0), st.integers(0, 10**7).map(float)),
                                      min_size=n, max_size=n)), dtype=float)
    prev = np.concatenate((close[:1], close[:-1]))
    o = prev
    freq = draw(st.sampled_from(["37min", "5h", "1D"]))
    index = pd.date_range("2024-01-05 21:00", periods=n, freq=freq, tz="UTC", name="time")
    return pd.DataFrame({"open": o, "high": np.maximum(o, close) * (1 + up),
                         "low": np.minimum(o, close) * (1 - down), "close": close, "volume": volume},
                        index=index)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=bars(), cuts=st.lists(st.integers(0, 140), min_size=1, max_size=5))
def test_features_of_a_prefix_are_the_prefix_of_the_features(df: pd.DataFrame, cuts: list[int]) -> None:
    """Feature values at bar t do not depend on any bar after t, bit for bit."""
    full = make_features(df)
    for k in sorted({min(c, len(df)) for c in cuts}):
        pd.testing.assert_frame_equal(make_features(df.iloc[:k]), full.iloc[:k], check_exact=True,
                                      obj=f"features of the first {k} of {len(df)} bars")


@pytest.mark.parametrize("symbol", ["GOOG", "EURUSD"])
def test_prefix_property_on_market_data(train_bars, symbol: str) -> None:
    df = train_bars(symbol).iloc[:900]
    full = make_features(df)
    for k in (0, 1, WARMUP, WARMUP + 1, 250, 899):
        pd.testing.assert_frame_equal(make_features(df.iloc[:k]), full.iloc[:k], check_exact=True)
        if k > WARMUP:
            pd.testing.assert_series_equal(feature_row(df.iloc[:k]), full.iloc[k - 1], check_exact=True)


# ---------------------------------------------------------------------- shape and warm-up


def test_feature_set_is_named_versioned_and_ordered() -> None:
    assert (FEATURE_SET.name, FEATURE_SET.version) == ("bars_v1", 1)
    assert len(set(FEATURE_SET.columns)) == len(FEATURE_SET.columns) == 22
    assert FeatureSchema.from_dict(FEATURE_SET.to_dict()) == FEATURE_SET


@pytest.mark.parametrize("symbol", ["GOOG", "BTC", "EURUSD"])
def test_warmup_rows_are_nan_and_the_rest_finite(train_bars, symbol: str) -> None:
    df = train_bars(symbol)
    X = make_features(df)
    assert list(X.columns) == list(FEATURE_SET.columns)
    assert X.index.equals(df.index)
    assert (X.dtypes == np.float64).all()
    assert X.iloc[:WARMUP].isna().any(axis=1).all()
    assert np.isfinite(X.iloc[WARMUP:].to_numpy()).all()


# ---------------------------------------------------------------------- values


def test_indicator_features_match_talib(train_bars) -> None:
    df = train_bars("GOOG")
    X = make_features(df)
    h, lo, c = (df[k].to_numpy() for k in ("high", "low", "close"))
    upper, _, lower = talib.BBANDS(c, 20, 2.0, 2.0)
    want = {
        "rsi_14": talib.RSI(c, 14) / 100.0,
        "atr_14_rel": talib.ATR(h, lo, c, 14) / c,
        "macd_hist_rel": talib.MACD(c, 12, 26, 9)[2] / c,
        "bb_pctb_20": (c - lower) / (upper - lower),
        "ema_gap_10": c / talib.EMA(c, 10) - 1.0,
        "ema_gap_50": c / talib.EMA(c, 50) - 1.0,
    }
    for col, ref in want.items():
        m = ~np.isnan(ref)
        assert np.array_equal(np.isnan(X[col].to_numpy()), ~m), col
        np.testing.assert_allclose(X[col].to_numpy()[m], ref[m], rtol=1e-9, atol=1e-12, err_msg=col)


def test_return_volatility_and_volume_features_closed_form(train_bars) -> None:
    df = train_bars("BTC")
    X = make_features(df)
    c, v = df["close"].to_numpy(), df["volume"].to_numpy()
    t = 500
    for k in (1, 2, 5, 10, 20):
        assert X[f"ret_{k}"].iloc[t] == pytest.approx(c[t] / c[t - k] - 1.0, rel=1e-12)
    assert X["ret_1_lag1"].iloc[t] == pytest.approx(c[t - 1] / c[t - 2] - 1.0, rel=1e-12)
    assert X["ret_1_lag2"].iloc[t] == pytest.approx(c[t - 2] / c[t - 3] - 1.0, rel=1e-12)
    logret = np.diff(np.log(c[t - 20:t + 1]))
    assert X["vol_20"].iloc[t] == pytest.approx(np.std(logret, ddof=1), rel=1e-9)
    assert X["vol_10"].iloc[t] == pytest.approx(np.std(logret[-10:], ddof=1), rel=1e-9)
    lv = np.log1p(v[t - 19:t + 1])
    assert X["volume_z_20"].iloc[t] == pytest.approx((lv[-1] - lv.mean()) / lv.std(), rel=1e-9)
    assert X["range_rel"].iloc[t] == pytest.approx((df["high"].iloc[t] - df["low"].iloc[t]) / c[t], rel=1e-12)


def test_time_features_are_cyclical() -> None:
    # Monday 06:00 UTC: a quarter of the day, (0 + 0.25) / 7 of the week.
    idx = pd.DatetimeIndex(["2024-01-01 06:00", "2024-01-07 18:00"], tz="UTC", name="time")
    df = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 0.0}, index=idx)
    X = make_features(df)
    assert X["hour_sin"].iloc[0] == pytest.approx(1.0)
    assert X["hour_cos"].iloc[0] == pytest.approx(0.0, abs=1e-12)
    assert X["dow_sin"].iloc[0] == pytest.approx(math.sin(2 * math.pi * 0.25 / 7))
    # Sunday 18:00: day 6.75 of 7.
    assert X["hour_sin"].iloc[1] == pytest.approx(-1.0)
    assert X["dow_cos"].iloc[1] == pytest.approx(math.cos(2 * math.pi * 6.75 / 7))
    # A non-UTC index means the same instants.
    shifted = df.tz_convert("America/New_York")
    pd.testing.assert_frame_equal(make_features(shifted).reset_index(drop=True), X.reset_index(drop=True))


# ---------------------------------------------------------------------- labels


@pytest.mark.parametrize("horizon", [1, 5, 20])
def test_labels_are_forward_returns(train_bars, horizon: int) -> None:
    df = train_bars("GOOG")
    c = df["close"].to_numpy()
    y = make_labels(df, horizon, "regression")
    d = make_labels(df, horizon, "classification")
    assert y.index.equals(df.index) and d.index.equals(df.index)
    assert y.iloc[-horizon:].isna().all() and d.iloc[-horizon:].isna().all()
    for t in (0, 1, 777, len(c) - horizon - 1):
        fwd = c[t + horizon] / c[t] - 1.0
        assert y.iloc[t] == pytest.approx(fwd, rel=1e-12, abs=1e-15)
        assert d.iloc[t] == (1.0 if fwd > 0 else 0.0)
    assert set(np.unique(d.dropna())) == {0.0, 1.0}


def test_flat_move_is_not_up() -> None:
    idx = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC")
    df = pd.DataFrame({"close": [10.0, 10.0, 11.0]}, index=idx)
    assert make_labels(df, 1, "classification").tolist()[:2] == [0.0, 1.0]


@pytest.mark.parametrize("horizon", [0, -1, 2.5, True])
def test_bad_horizon(train_bars, horizon) -> None:
    with pytest.raises(TrainingError, match="horizon"):
        make_labels(train_bars("GOOG"), horizon)


def test_bad_task(train_bars) -> None:
    with pytest.raises(TrainingError, match="task must be one of"):
        make_labels(train_bars("GOOG"), 1, "ranking")


# ---------------------------------------------------------------------- bad input


def test_nan_close_is_named(train_bars) -> None:
    df = train_bars("GOOG")
    df.iloc[300, df.columns.get_loc("close")] = np.nan
    with pytest.raises(DataError, match=r"field 'close'.*row 300") as err:
        make_features(df)
    assert err.value.field == "close"


def test_unordered_times_and_missing_columns(train_bars) -> None:
    df = train_bars("GOOG").iloc[:100]
    with pytest.raises(DataError, match="must increase"):
        make_features(df.iloc[::-1])
    with pytest.raises(DataError, match="lack column"):
        make_features(df.drop(columns="volume"))
    with pytest.raises(DataError, match="DatetimeIndex"):
        make_features(df.reset_index(drop=True))


def test_feature_row_needs_the_warmup(train_bars) -> None:
    df = train_bars("GOOG")
    with pytest.raises(DataError, match=f"at least {WARMUP + 1} bars"):
        feature_row(df.iloc[:WARMUP])
    row = feature_row(df.iloc[:WARMUP + 1])
    assert list(row.index) == list(FEATURE_SET.columns) and row.name == df.index[WARMUP]


def test_features_for_checks_the_schema(train_bars) -> None:
    df = train_bars("GOOG").iloc[:80]
    pd.testing.assert_frame_equal(features_for(FEATURE_SET, df), make_features(df))
    with pytest.raises(SchemaMismatchError, match="bars_v1 v2"):
        features_for(FeatureSchema("bars_v1", 2, FEATURE_SET.columns), df)
    with pytest.raises(SchemaMismatchError):
        features_for(FeatureSchema("bars_v1", 1, FEATURE_SET.columns[::-1]), df)
