"""The SQL model repository: version rows, aliases and the prediction log, on SQLite and PostgreSQL."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from alphaloop.core.errors import StoreError
from alphaloop.core.predictions import InferencePath, Prediction
from alphaloop.ml.artifact import FeatureSchema
from alphaloop.ml.registry import ModelVersionRecord, RegistryBackend
from alphaloop.store import PREDICTION_COLUMNS, SqlModelRepository, Store

SCHEMA = FeatureSchema("bars_v1", 1, ("ret_1", "rsi_14"))


def record(name: str = "btc", version: int = 1, **changes) -> ModelVersionRecord:
    base = dict(
        name=name, version=version, sha256="ab" * 32, path=f"{name}/{version}.onnx", task="classification",
        horizon=5, schema=SCHEMA, data_start=pd.Timestamp("2014-09-17", tz="UTC"),
        data_end=pd.Timestamp("2022-03-01 12:30:00.123456", tz="UTC"),
        params={"model": "lightgbm", "params": {"n_folds": 5, "estimator": {"num_leaves": 7}}, "tags": ("a", "b")},
        metrics={"overall": {"auc": 0.52, "log_loss": 0.69}, "folds": [{"auc": math.nan, "r2": -math.inf}]})
    base.update(changes)
    return ModelVersionRecord(**base)


@pytest.fixture
def repo(store: Store) -> SqlModelRepository:
    return SqlModelRepository(store)


def test_is_a_registry_backend(repo: SqlModelRepository, tmp_path) -> None:
    assert isinstance(repo, RegistryBackend)
    assert repo.registry(tmp_path).backend is repo


def test_version_rows_round_trip(repo: SqlModelRepository, clock) -> None:
    stored = repo.add_version(record())
    got = repo.get_version("btc", 1)
    assert got == stored
    assert got.created_at == pd.Timestamp(clock.now) and str(got.created_at.tz) == "UTC"
    assert got.schema == SCHEMA and got.data_end == pd.Timestamp("2022-03-01 12:30:00.123456", tz="UTC")
    assert got.params == {"model": "lightgbm", "params": {"n_folds": 5, "estimator": {"num_leaves": 7}},
                          "tags": ["a", "b"]}
    assert got.metrics["overall"] == {"auc": 0.52, "log_loss": 0.69}
    assert math.isnan(got.metrics["folds"][0]["auc"]) and got.metrics["folds"][0]["r2"] == -math.inf
    assert repo.add_version(record(version=2, data_start=None, data_end=None)).data_start is None


def test_lookups(repo: SqlModelRepository) -> None:
    assert repo.latest_version("btc") is None and repo.get_version("btc", 1) is None
    assert repo.list_models() == [] and repo.list_versions("btc") == [] and repo.aliases("btc") == {}
    for v in (1, 2, 3):
        repo.add_version(record(version=v))
    repo.add_version(record("aapl", 1, task="regression"))
    assert repo.latest_version("btc").version == 3
    assert [r.version for r in repo.list_versions("btc")] == [1, 2, 3]
    assert repo.list_models() == ["aapl", "btc"]
    assert repo.get_version("aapl", 1).task == "regression"


def test_duplicate_version_is_refused(repo: SqlModelRepository, count_rows) -> None:
    repo.add_version(record())
    with pytest.raises(StoreError, match="cannot register model btc version 1"):
        repo.add_version(record(sha256="cd" * 32))
    assert count_rows(repo.store, "model_versions") == 1
    assert repo.get_version("btc", 1).sha256 == "ab" * 32


def test_constraints_hold_in_the_database(repo: SqlModelRepository) -> None:
    with pytest.raises(StoreError):
        repo.add_version(record(task="ranking"))
    with pytest.raises(StoreError):
        repo.add_version(record(version=0))


def test_aliases(repo: SqlModelRepository, count_rows) -> None:
    repo.add_version(record(version=1))
    repo.add_version(record(version=2))
    assert repo.get_alias("btc", "champion") is None
    repo.set_alias("btc", "champion", 1)
    repo.set_alias("btc", "challenger", 2)
    repo.set_alias("btc", "champion", 2)  # moved, not duplicated
    assert repo.get_alias("btc", "champion") == 2
    assert repo.aliases("btc") == {"challenger": 2, "champion": 2}
    assert count_rows(repo.store, "model_aliases") == 2
    with pytest.raises(StoreError, match="has no version 9"):
        repo.set_alias("btc", "champion", 9)
    assert repo.get_alias("btc", "champion") == 2


# ---------------------------------------------------------------------- prediction records


def prediction_rows() -> list[dict]:
    t0 = pd.Timestamp("2024-05-01 10:00", tz="UTC")
    return [
        {"model": "btc", "version": 1, "instrument": "BTC-USD", "time": t0 + pd.Timedelta(hours=2),
         "horizon": 5, "value": 0.61, "confidence": 0.22, "path": "onnx_cpu"},
        {"model": "btc", "version": 1, "instrument": "BTC-USD", "time": t0, "horizon": 5, "value": 0.4,
         "path": InferencePath.DEFAULT},  # no confidence
        {"model": "btc", "version": 2, "instrument": "ETH-USD",
         "time": pd.Timestamp("2024-05-01 13:00+02:00"), "horizon": 5,
         "prediction": Prediction(value=-0.01, confidence=0.8, model="btc", version=2,
                                  path=InferencePath.TENSORRT, latency_ms=1.5)},
    ]


def test_record_and_read_predictions(repo: SqlModelRepository) -> None:
    assert repo.record_predictions(prediction_rows()) == 3
    df = repo.prediction_records()
    assert list(df.columns) == list(PREDICTION_COLUMNS)
    assert str(df["time"].dt.tz) == "UTC" and str(df["created_at"].dt.tz) == "UTC"
    # Oldest bar first; 13:00+02:00 is 11:00 UTC.
    assert df["time"].tolist() == [pd.Timestamp(f"2024-05-01 {h}:00", tz="UTC") for h in (10, 11, 12)]
    assert df["value"].tolist() == [0.4, -0.01, 0.61]
    assert df["path"].tolist() == ["default", "tensorrt", "onnx_cpu"]
    assert np.isnan(df["confidence"].iloc[0]) and df["confidence"].iloc[1] == 0.8
    assert df["version"].dtype == np.int64 and df["horizon"].tolist() == [5, 5, 5]

    assert repo.prediction_records(model="btc", version=1)["value"].tolist() == [0.4, 0.61]
    assert repo.prediction_records(instrument="ETH-USD")["version"].tolist() == [2]
    assert repo.prediction_records(model="nope").empty


def test_bad_prediction_rows_refuse_the_batch(repo: SqlModelRepository, count_rows) -> None:
    rows = prediction_rows()
    bad = {**rows[0]}
    del bad["instrument"]
    with pytest.raises(StoreError, match=r"row 1: .*missing instrument"):
        repo.record_predictions([rows[1], bad])
    with pytest.raises(StoreError, match="row 0: value must be finite"):
        repo.record_predictions([{**rows[0], "value": math.nan}])
    assert count_rows(repo.store, "prediction_records") == 0
    assert repo.record_predictions([]) == 0
    empty = repo.prediction_records()
    assert empty.empty and list(empty.columns) == list(PREDICTION_COLUMNS)
