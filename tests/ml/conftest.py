"""Fixtures for the feature, training and registry tests (names prefixed ``train_``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from alphaloop.data import load_bars

TRAIN_MARKET = Path(__file__).resolve().parents[1] / "fixtures" / "market"
# Few, small trees: the tests check plumbing and sanity, not forecasting skill.
TRAIN_FAST_LGBM = {"n_estimators": 25, "num_leaves": 7}


@pytest.fixture(scope="session")
def train_bars() -> Callable[[str], pd.DataFrame]:
    """``train_bars("GOOG")`` / ``("BTC")`` / ``("EURUSD")``: the market fixtures as validated bars."""
    files = {"GOOG": "GOOG_daily.csv", "BTC": "BTC-USD_daily.csv", "EURUSD": "EURUSD_1h.csv"}
    cache: dict[str, pd.DataFrame] = {}

    def get(symbol: str) -> pd.DataFrame:
        if symbol not in cache:
            cache[symbol] = load_bars(TRAIN_MARKET / files[symbol], instrument=symbol)
        return cache[symbol].copy()

    return get


@pytest.fixture(scope="session")
def train_fitted(train_bars):
    """``train_fitted(symbol, model, task, horizon=5)``: a TrainResult, trained once per session."""
    from alphaloop.ml.training import train_model

    cache: dict[tuple, object] = {}

    def get(symbol: str, model: str, task: str, horizon: int = 5):
        key = (symbol, model, task, horizon)
        if key not in cache:
            params = TRAIN_FAST_LGBM if model == "lightgbm" else None
            cache[key] = train_model(train_bars(symbol), model=model, task=task, horizon=horizon, params=params)
        return cache[key]

    return get
