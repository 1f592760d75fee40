"""Walk-forward splits, training on real market data, metrics, ONNX export and its agreement."""

from __future__ import annotations

import math
import re

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alphaloop.ml.training as training
from alphaloop.ml.errors import TrainingError
from alphaloop.ml.export import (
    INPUT_NAME,
    OUTPUT_NAMES,
    check_agreement,
    export_model,
    onnx_predict,
    to_onnx,
)
from alphaloop.ml.features import FEATURE_SET, WARMUP, make_features
from alphaloop.ml.training import (
    classification_metrics,
    regression_metrics,
    train_model,
    walk_forward_splits,
)

COMBOS = [(m, t) for m in ("lightgbm", "linear") for t in ("regression", "classification")]

# ---------------------------------------------------------------------- walk-forward splits


@settings(max_examples=200, deadline=None)
@given(n_rows=st.integers(10, 3000), n_folds=st.integers(2, 8), horizon=st.integers(1, 30),
       min_train=st.integers(1, 200))
def test_splits_are_ordered_disjoint_and_purged(n_rows: int, n_folds: int, horizon: int, min_train: int) -> None:
    try:
        folds = walk_forward_splits(n_rows, n_folds=n_folds, horizon=horizon, min_train=min_train)
    except TrainingError:
        # Refused only when even one-row test blocks would leave too little to train on.
        assert n_rows - n_folds - horizon < min_train
        return
    assert len(folds) == n_folds
    previous_test_end = None
    for k, f in enumerate(folds):
        assert f.index == k
        # Never shuffled: both blocks are runs of consecutive rows, the training block from row 0.
        assert np.array_equal(f.train, np.arange(len(f.train)))
        assert np.array_equal(f.test, np.arange(f.test[0], f.test[0] + len(f.test)))
        # Purged: exactly `horizon` rows between the last training row and the first test row, so no
        # training label (which looks `horizon` rows ahead) reaches a test row.
        assert f.test[0] - f.train[-1] - 1 == horizon
        assert f.train[-1] + horizon < f.test[0]
        assert not set(f.train) & set(f.test)
        # Test blocks follow each other without gaps or overlap, and expand the training window.
        if previous_test_end is not None:
            assert f.test[0] == previous_test_end + 1
            assert len(f.train) > len(folds[k - 1].train)
        previous_test_end = f.test[-1]
    assert folds[-1].test[-1] == n_rows - 1
    assert len({len(f.test) for f in folds}) == 1
    assert len(folds[0].train) >= min_train


def test_splits_refuse_too_few_rows() -> None:
    with pytest.raises(TrainingError, match="cannot make 5 walk-forward folds"):
        walk_forward_splits(30, n_folds=5, horizon=5, min_train=21)
    assert len(walk_forward_splits(30, n_folds=5, horizon=5, min_train=20)[0].train) == 20
    with pytest.raises(TrainingError, match="of 10\\+ test rows"):
        walk_forward_splits(100, n_folds=5, horizon=5, min_train=50, min_test=10)
    with pytest.raises(TrainingError, match="n_folds"):
        walk_forward_splits(300, n_folds=1)


# ---------------------------------------------------------------------- metrics (closed forms)


def test_regression_metrics_closed_form() -> None:
    y = np.array([0.01, -0.02, 0.03, -0.01])
    p = np.array([0.02, -0.01, -0.01, -0.01])
    m = regression_metrics(y, p)
    assert m["n"] == 4
    assert m["mae"] == pytest.approx((0.01 + 0.01 + 0.04 + 0.0) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt((1e-4 + 1e-4 + 16e-4 + 0) / 4))
    assert m["directional_accuracy"] == pytest.approx(3 / 4)


def test_classification_metrics_closed_form() -> None:
    y = np.array([1, 0, 1, 0, 1, 1, 0, 0], dtype=float)
    half = classification_metrics(y, np.full(8, 0.5))
    assert half["log_loss"] == pytest.approx(math.log(2))
    assert half["brier"] == pytest.approx(0.25)
    assert half["auc"] == pytest.approx(0.5)
    assert half["base_rate"] == pytest.approx(0.5)
    assert half["ece"] == pytest.approx(0.0)
    assert half["reliability"] == [{"lo": 0.5, "hi": 0.6, "n": 8, "mean_p": 0.5, "frac_up": 0.5}]

    p = np.array([0.9, 0.2, 0.8, 0.1, 0.7, 0.95, 0.3, 0.05])  # ranks every up above every down
    m = classification_metrics(y, p)
    assert m["auc"] == 1.0
    assert m["directional_accuracy"] == 1.0
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert sum(b["n"] for b in m["reliability"]) == 8
    assert math.isnan(classification_metrics(np.ones(4), np.full(4, 0.7))["auc"])  # one class: undefined


# ---------------------------------------------------------------------- training on market data


@pytest.mark.parametrize("symbol", ["BTC", "GOOG"])
@pytest.mark.parametrize(("model", "task"), COMBOS)
def test_training_on_market_data(train_fitted, train_bars, symbol: str, model: str, task: str) -> None:
    r = train_fitted(symbol, model, task)
    df = train_bars(symbol)
    assert (r.model_kind, r.task, r.horizon, r.schema) == (model, task, 5, FEATURE_SET)
    assert (r.data_start, r.data_end) == (df.index[0], df.index[-1])
    assert r.n_samples == len(df) - WARMUP - 5
    assert r.params["model"] == model and r.params["n_folds"] == len(r.folds) == 5
    m = r.metrics
    assert 0.0 <= m["directional_accuracy"] <= 1.0
    if task == "regression":
        assert 0.0 < m["mae"] <= m["rmse"] < 0.5  # daily 5-bar returns: a few percent
        assert -1.0 < m["r2"] < 0.2  # no model forecasts prices well; a large R² would mean a leak
    else:
        assert 0.0 <= m["auc"] <= 1.0
        assert 0.3 < m["auc"] < 0.7  # near chance on prices: far from it would mean a leak
        assert 0.5 < m["log_loss"] < 1.0
        assert 0.0 < m["brier"] < 0.35
        assert 0.0 <= m["ece"] <= 1.0
        assert sum(b["n"] for b in m["reliability"]) == m["n"]
    assert m["n"] == sum(f.n_test for f in r.folds)
    positions = {t: i for i, t in enumerate(df.index)}
    for f in r.folds:
        assert f.train_start == df.index[WARMUP]  # expanding window from the first complete row
        assert positions[f.test_start] - positions[f.train_end] - 1 == 5  # the purge, in bars
        assert 0.0 <= f.metrics["directional_accuracy"] <= 1.0
    preds = r.predict(r.check_rows)
    assert preds.shape == (len(r.check_rows),) and np.isfinite(preds).all()
    if task == "classification":
        assert ((preds >= 0) & (preds <= 1)).all()


def test_training_is_deterministic(train_bars) -> None:
    df = train_bars("GOOG").iloc[:800]
    a = train_model(df, model="lightgbm", task="classification", params={"n_estimators": 10})
    b = train_model(df, model="lightgbm", task="classification", params={"n_estimators": 10})
    np.testing.assert_array_equal(a.predict(a.check_rows), b.predict(b.check_rows))
    assert a.metrics == b.metrics


# ---------------------------------------------------------------------- errors


def test_empty_data(train_bars) -> None:
    with pytest.raises(TrainingError, match="no bars"):
        train_model(train_bars("GOOG").iloc[:0])


def test_too_short_for_warmup_horizon_and_folds(train_bars) -> None:
    with pytest.raises(TrainingError, match=r"GOOG: 200 bars leave 146 labelled rows after the 49-bar warm-up"):
        train_model(train_bars("GOOG").iloc[:200], horizon=5)
    with pytest.raises(TrainingError, match="no bar has every feature"):
        train_model(train_bars("GOOG").iloc[:30], horizon=5)


def test_horizon_too_long(train_bars) -> None:
    df = train_bars("GOOG").iloc[:500]
    with pytest.raises(TrainingError, match="horizon 500 is not shorter than the data"):
        train_model(df, horizon=500)
    with pytest.raises(TrainingError, match="labelled rows"):
        train_model(df, horizon=300)
    with pytest.raises(TrainingError, match="horizon must be"):
        train_model(df, horizon=0)


def test_nan_in_bars_is_named(train_bars) -> None:
    df = train_bars("GOOG")
    df.iloc[1000, df.columns.get_loc("volume")] = np.nan
    with pytest.raises(TrainingError, match=rf"bad bars: .*field 'volume'.*{df.index[1000].date()}"):
        train_model(df)


def test_nan_feature_after_warmup_is_named(train_bars, monkeypatch) -> None:
    df = train_bars("GOOG")

    def leaky(bars: pd.DataFrame) -> pd.DataFrame:
        X = make_features(bars)
        X.iloc[700, X.columns.get_loc("rsi_14")] = np.nan
        return X

    monkeypatch.setattr(training, "make_features", leaky)
    with pytest.raises(TrainingError, match=re.escape(f"GOOG: feature 'rsi_14' is nan at {df.index[700]}")):
        train_model(df)


def test_bad_arguments(train_bars) -> None:
    df = train_bars("GOOG").iloc[:600]
    with pytest.raises(TrainingError, match="model must be one of"):
        train_model(df, model="xgboost")
    with pytest.raises(TrainingError, match="task must be one of"):
        train_model(df, task="ranking")
    with pytest.raises(TrainingError, match="bad parameters for linear"):
        train_model(df, model="linear", params={"no_such_param": 1})


def test_one_class_labels(train_bars) -> None:
    df = train_bars("GOOG").iloc[:600].copy()
    rising = np.linspace(100.0, 300.0, len(df))
    df["open"] = df["low"] = rising
    df["close"] = df["high"] = rising
    with pytest.raises(TrainingError, match="every label is 1"):
        train_model(df, task="classification")


# ---------------------------------------------------------------------- ONNX export


@pytest.mark.parametrize(("model", "task"), COMBOS)
def test_onnx_agrees_with_native(train_fitted, train_bars, model: str, task: str) -> None:
    r = train_fitted("BTC", model, task)
    art = export_model(r, "btc")
    assert art.version == 0 and art.sha256 == art.digest(art.onnx)
    assert (art.task, art.horizon, art.schema) == (task, 5, FEATURE_SET)
    assert art.metadata["onnx_check"]["rows"] == len(r.check_rows)
    assert art.metadata["onnx_check"]["max_abs_diff"] <= 1e-5

    proto = onnx.load_model_from_string(art.onnx)
    onnx.checker.check_model(proto)
    sess = ort.InferenceSession(art.onnx, providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.type, inp.shape[1]) == (INPUT_NAME, "tensor(float)", len(FEATURE_SET.columns))
    assert (out.name, out.type, out.shape[1]) == (OUTPUT_NAMES[task], "tensor(float)", 1)

    # Every complete row of the data, not only the check rows: ONNX Runtime vs the native model.
    X = make_features(train_bars("BTC")).iloc[WARMUP:].to_numpy(np.float32)
    got = sess.run(None, {INPUT_NAME: X})[0]
    assert got.shape == (len(X), 1)
    native = r.predict(X)
    np.testing.assert_allclose(got[:, 0], native, rtol=0, atol=1e-5)
    if task == "classification":
        assert np.array_equal(native, r.model.predict_proba(X.astype(np.float64))[:, 1])
        assert ((got >= 0) & (got <= 1)).all()


def test_disagreement_is_refused(train_fitted) -> None:
    reg = train_fitted("BTC", "linear", "regression")
    cls = train_fitted("BTC", "linear", "classification")
    with pytest.raises(TrainingError, match="ONNX and native linear predictions disagree"):
        check_agreement(cls, to_onnx(reg))  # P(up) ~ 0.5 against forward returns ~ 0.0
    with pytest.raises(TrainingError, match="no rows"):
        check_agreement(reg, to_onnx(reg), np.empty((0, len(FEATURE_SET.columns))))
    assert onnx_predict(to_onnx(reg), reg.check_rows[:3]).shape == (3,)


def test_onnx_metadata_records_the_schema(train_fitted) -> None:
    r = train_fitted("GOOG", "lightgbm", "classification")
    proto = onnx.load_model_from_string(to_onnx(r))
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["alphaloop.task"] == "classification" and props["alphaloop.horizon"] == "5"
    assert '"bars_v1"' in props["alphaloop.feature_schema"]
