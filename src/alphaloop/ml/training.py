"""Training: time-ordered walk-forward validation, LightGBM and linear baselines, honest metrics.

Rows are never shuffled. Each fold trains on every labelled row before its test block except the
last ``horizon`` of them (purged: their labels reach into the test block, so keeping them would
leak test prices into training). The model returned is refitted on all labelled rows; the folds
only measure how such a model does on data it has not seen.

Features are rounded to float32 before fitting: ONNX models take float32 input, and a tree split
compared in float64 on values float32 cannot hold could send a row down another branch than in the
exported graph. Trained on float32 values, native and ONNX predictions agree (see :mod:`.export`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import brier_score_loss, log_loss, mean_absolute_error, r2_score, roc_auc_score
from sklearn.model_selection import TimeSeriesSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from alphaloop.core.errors import DataError
from alphaloop.indicators import IndicatorError
from alphaloop.ml.artifact import FeatureSchema
from alphaloop.ml.errors import TrainingError
from alphaloop.ml.features import FEATURE_SET, WARMUP, check_horizon, check_task, make_features, make_labels

MODELS = ("lightgbm", "linear")
MIN_TEST_ROWS = 20  # per fold: fewer make a fold's metrics noise

# Small, regularised defaults: daily bars give a few thousand noisy rows, not millions.
LIGHTGBM_DEFAULTS: dict[str, Any] = {
    "n_estimators": 200, "learning_rate": 0.03, "num_leaves": 15, "min_child_samples": 40,
    "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "reg_lambda": 1.0,
    "n_jobs": 1, "verbose": -1,
}
LINEAR_DEFAULTS: dict[str, dict[str, Any]] = {
    "regression": {"alpha": 1.0},                        # Ridge
    # newton-cholesky: a few exact Newton steps suit many rows of few features (lbfgs takes hundreds).
    "classification": {"C": 1.0, "solver": "newton-cholesky", "max_iter": 100},  # LogisticRegression
}


@dataclass(frozen=True, slots=True)
class Fold:
    """One walk-forward split: positions into the labelled rows, both ascending."""

    index: int
    train: np.ndarray
    test: np.ndarray


@dataclass(frozen=True, slots=True)
class FoldResult:
    index: int
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    n_train: int
    n_test: int
    metrics: dict[str, Any]


@dataclass(slots=True)
class TrainResult:
    """A fitted model and what is known about it.

    ``model`` is the native estimator refitted on all labelled rows. ``metrics`` are computed over the
    out-of-fold predictions of every fold together; ``folds`` holds each fold's. ``data_start`` and
    ``data_end`` are the first and last bar the model saw (warm-up and the future of the last labels
    included). ``check_rows`` (float32) are the latest feature rows, for the ONNX agreement check.
    """

    model: Any
    model_kind: str
    task: str
    horizon: int
    schema: FeatureSchema
    params: dict[str, Any]
    metrics: dict[str, Any]
    folds: list[FoldResult]
    data_start: pd.Timestamp
    data_end: pd.Timestamp
    n_samples: int
    check_rows: np.ndarray
    instrument: str | None = None

    def predict(self, X: Any) -> np.ndarray:
        """Native predictions: the forward return (regression) or P(up) (classification), 1-D float64."""
        return _predict(self.model, self.task, _as_float32_exact(X))


def walk_forward_splits(n_rows: int, *, n_folds: int = 5, horizon: int = 1, test_size: int | None = None,
                        min_train: int = 1, min_test: int = 1) -> list[Fold]:
    """Expanding-window splits over ``n_rows`` time-ordered rows.

    The test blocks are consecutive, of ``test_size`` rows, and end at the last row. By default
    ``test_size`` is an equal share with the first training block, shrunk if needed so that block
    keeps ``min_train`` rows. The ``horizon`` rows before each test block are dropped from its
    training set. Raises ``TrainingError`` when the rows cannot give ``n_folds`` folds with
    ``min_train`` training and ``min_test`` test rows each.
    """
    horizon = check_horizon(horizon)
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
        raise TrainingError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    min_train, min_test = max(min_train, 1), max(min_test, 1)
    if test_size is None:
        test_size = min((n_rows - horizon) // (n_folds + 1), (n_rows - horizon - min_train) // n_folds)
    first_train = n_rows - n_folds * test_size - horizon
    if test_size < min_test or first_train < min_train:
        raise TrainingError(
            f"{n_rows} labelled rows cannot make {n_folds} walk-forward folds of {min_test}+ test rows "
            f"after {min_train}+ training rows and a {horizon}-row purge; use fewer folds or more data")
    splitter = TimeSeriesSplit(n_splits=n_folds, test_size=test_size, gap=horizon)
    return [Fold(i, train, test) for i, (train, test) in enumerate(splitter.split(np.empty((n_rows, 1))))]


def train_model(df: pd.DataFrame, *, model: str = "lightgbm", task: str = "regression", horizon: int = 5,
                n_folds: int = 5, min_train: int = 100, params: dict[str, Any] | None = None,
                seed: int = 0, instrument: str | None = None) -> TrainResult:
    """Train a ``model`` ("lightgbm" or "linear") for ``task`` on bars ``df`` with walk-forward validation.

    ``params`` override the estimator's defaults (``LIGHTGBM_DEFAULTS``; for "linear" Ridge's
    ``alpha`` or LogisticRegression's ``C``, ``max_iter``...). Raises ``TrainingError`` with the reason
    when the data is empty, too short for the warm-up, horizon and folds, has bad bars, or gives
    non-finite features after the warm-up.
    """
    if model not in MODELS:
        raise TrainingError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    task, horizon = check_task(task), check_horizon(horizon)
    name = instrument or (df.attrs.get("instrument") if isinstance(df, pd.DataFrame) else None)
    label = f"{name}: " if name else ""
    if not isinstance(df, pd.DataFrame) or len(df) == 0:
        raise TrainingError(f"{label}no bars to train on")
    n_bars = len(df)
    if horizon >= n_bars:
        raise TrainingError(f"{label}horizon {horizon} is not shorter than the data ({n_bars} bars)")
    try:
        X = make_features(df)
        y = make_labels(df, horizon, task)
    except (DataError, IndicatorError) as e:
        raise TrainingError(f"{label}bad bars: {e}") from e

    first = _first_complete_row(X, label)
    _require_finite(X.iloc[first:], label)
    stop = n_bars - horizon  # the last `horizon` bars have no label yet
    n_rows = stop - first
    need = min_train + horizon + n_folds * MIN_TEST_ROWS
    if n_rows < need:
        raise TrainingError(
            f"{label}{n_bars} bars leave {max(n_rows, 0)} labelled rows after the {first}-bar warm-up and the "
            f"{horizon}-bar horizon; {n_folds} walk-forward folds need at least {need} ({min_train} training "
            f"rows + {horizon} purged + {n_folds} x {MIN_TEST_ROWS} test rows)")
    Xv = _as_float32_exact(X.to_numpy()[first:stop])
    yv = y.to_numpy()[first:stop]
    if np.isnan(yv).any():  # cannot happen with validated bars; a guard against a future feature set
        pos = first + int(np.argmax(np.isnan(yv)))
        raise TrainingError(f"{label}label is NaN at {df.index[pos]}")
    if task == "classification" and len(np.unique(yv)) < 2:
        raise TrainingError(f"{label}every label is {int(yv[0])}: a classifier needs both up and down moves")
    times = df.index[first:stop]

    est_params = _estimator_params(model, task, params, seed)
    folds = walk_forward_splits(n_rows, n_folds=n_folds, horizon=horizon, min_train=min_train,
                                min_test=MIN_TEST_ROWS)
    fold_results: list[FoldResult] = []
    oof_true, oof_pred = [], []
    for fold in folds:
        y_train = yv[fold.train]
        if task == "classification" and len(np.unique(y_train)) < 2:
            raise TrainingError(f"{label}fold {fold.index} trains on one class only; use fewer folds")
        est = _fit(model, task, est_params, Xv[fold.train], y_train)
        pred = _predict(est, task, Xv[fold.test])
        fold_results.append(FoldResult(
            fold.index, times[fold.train[0]], times[fold.train[-1]], times[fold.test[0]], times[fold.test[-1]],
            len(fold.train), len(fold.test), _metrics(task, yv[fold.test], pred)))
        oof_true.append(yv[fold.test])
        oof_pred.append(pred)
    overall = _metrics(task, np.concatenate(oof_true), np.concatenate(oof_pred))

    final = _fit(model, task, est_params, Xv, yv)
    # The latest rows: the last test block plus the unlabelled tail, never seen by a fold model and,
    # for the tail, not by the final one either.
    check_from = max(first, stop - len(folds[-1].test))
    check_rows = X.to_numpy()[check_from:].astype(np.float32)
    return TrainResult(
        model=final, model_kind=model, task=task, horizon=horizon, schema=FEATURE_SET,
        params={"model": model, "estimator": est_params, "n_folds": n_folds, "min_train": min_train,
                "seed": seed, "warmup": first},
        metrics=overall, folds=fold_results, data_start=df.index[0], data_end=df.index[-1],
        n_samples=n_rows, check_rows=check_rows, instrument=name)


# ---------------------------------------------------------------------- metrics


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """MAE, RMSE, R², information coefficient (Pearson) and directional accuracy (sign agreement)."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    err = y_pred - y_true
    with np.errstate(invalid="ignore", divide="ignore"):
        ic = float(np.corrcoef(y_true, y_pred)[0, 1]) if len(y_true) > 1 and np.std(y_pred) > 0 else math.nan
    return {
        "n": len(y_true),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "rmse": float(np.sqrt(np.mean(err * err))),
        "r2": float(r2_score(y_true, y_pred)) if len(y_true) > 1 else math.nan,
        "ic": ic,
        "directional_accuracy": float(np.mean((y_pred > 0) == (y_true > 0))),
    }


def classification_metrics(y_true: np.ndarray, p_up: np.ndarray, n_buckets: int = 10) -> dict[str, Any]:
    """Log loss, AUC (NaN when only one class occurs), Brier score, accuracy at 0.5 (``directional_accuracy``),
    base rate, and calibration: ``reliability`` per probability bucket and its weighted gap ``ece``."""
    y_true = np.asarray(y_true, float)
    p = np.clip(np.asarray(p_up, float), 0.0, 1.0)
    both = len(np.unique(y_true)) == 2
    edges = np.round(np.linspace(0.0, 1.0, n_buckets + 1), 12)  # 0.6, not 0.6000000000000001
    bucket = np.clip(np.digitize(p, edges[1:-1]), 0, n_buckets - 1)
    reliability, ece = [], 0.0
    for b in range(n_buckets):
        m = bucket == b
        if m.any():
            mean_p, frac_up = float(p[m].mean()), float(y_true[m].mean())
            reliability.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": int(m.sum()),
                                "mean_p": mean_p, "frac_up": frac_up})
            ece += m.sum() / len(p) * abs(mean_p - frac_up)
    return {
        "n": len(y_true),
        "log_loss": float(log_loss(y_true, p, labels=[0.0, 1.0])),
        "auc": float(roc_auc_score(y_true, p)) if both else math.nan,
        "brier": float(brier_score_loss(y_true, p)),
        "directional_accuracy": float(np.mean((p > 0.5) == (y_true > 0.5))),
        "base_rate": float(y_true.mean()),
        "ece": float(ece),
        "reliability": reliability,
    }


def _metrics(task: str, y_true: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    return regression_metrics(y_true, pred) if task == "regression" else classification_metrics(y_true, pred)


# ---------------------------------------------------------------------- models


def _estimator_params(model: str, task: str, params: dict[str, Any] | None, seed: int) -> dict[str, Any]:
    if model == "lightgbm":
        return {**LIGHTGBM_DEFAULTS, "random_state": seed, **(params or {})}
    base = dict(LINEAR_DEFAULTS[task])
    if task == "classification":
        base["random_state"] = seed
    return {**base, **(params or {})}


def _new_estimator(model: str, task: str, params: dict[str, Any]) -> Any:
    if model == "lightgbm":
        import lightgbm  # heavy: imported when a model is trained, not when alphaloop.ml is

        cls = lightgbm.LGBMRegressor if task == "regression" else lightgbm.LGBMClassifier
        return cls(**params)
    final = Ridge(**params) if task == "regression" else LogisticRegression(**params)
    # Scaling inside the pipeline: the scaler's statistics come from the training fold only.
    return Pipeline([("scale", StandardScaler()), ("model", final)])


def _fit(model: str, task: str, params: dict[str, Any], X: np.ndarray, y: np.ndarray) -> Any:
    try:
        est = _new_estimator(model, task, params)
    except TypeError as e:  # an unknown keyword in params
        raise TrainingError(f"bad parameters for {model} {task}: {e}") from e
    try:
        est.fit(X, y.astype(np.int64) if task == "classification" else y)
    except (ValueError, TypeError) as e:
        raise TrainingError(f"{model} {task} failed to fit: {e}") from e
    return est


def _predict(est: Any, task: str, X: np.ndarray) -> np.ndarray:
    if task == "regression":
        return np.asarray(est.predict(X), dtype=np.float64).ravel()
    return np.asarray(est.predict_proba(X)[:, 1], dtype=np.float64)


def _as_float32_exact(X: Any) -> np.ndarray:
    """Float32-representable float64: what the ONNX graph will be given, in the type estimators use."""
    return np.asarray(X, dtype=np.float32).astype(np.float64)


# ---------------------------------------------------------------------- checks


def _first_complete_row(X: pd.DataFrame, label: str) -> int:
    complete = X.notna().all(axis=1).to_numpy()
    if not complete.any():
        raise TrainingError(f"{label}no bar has every feature: {len(X)} bars do not cover the "
                            f"{WARMUP}-bar warm-up of {FEATURE_SET.name}")
    return int(np.argmax(complete))


def _require_finite(X: pd.DataFrame, label: str) -> None:
    bad = ~np.isfinite(X.to_numpy())
    if bad.any():
        row, col = (int(v[0]) for v in np.nonzero(bad))
        value = X.iat[row, col]
        raise TrainingError(f"{label}feature {X.columns[col]!r} is {value} at {X.index[row]} (after the "
                            f"warm-up): the bars there are likely bad")


__all__ = [
    "LIGHTGBM_DEFAULTS",
    "LINEAR_DEFAULTS",
    "MIN_TEST_ROWS",
    "MODELS",
    "Fold",
    "FoldResult",
    "TrainResult",
    "classification_metrics",
    "regression_metrics",
    "train_model",
    "walk_forward_splits",
]
