"""Feedback records: round trip, validation naming the field, and records built from real backtests."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from discovery_feedback_helpers import planted_records

from alphaloop.backtest import run_backtest
from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.data import load_bars
from alphaloop.discovery.errors import DiscoveryInputError
from alphaloop.discovery.feedback import FeedbackRecord, FeedbackSink, feedback_from_run, records_from_dicts
from alphaloop.discovery.regime import regime_features
from alphaloop.discovery.retraining import FeedbackLoop, MemoryFeedbackRepository
from alphaloop.discovery.scoring import sharpe_ratio
from alphaloop.execution import BrokerConfig
from alphaloop.strategy import load_strategy

GOOG = Path(__file__).resolve().parents[1] / "fixtures" / "market" / "GOOG_daily.csv"


def test_round_trip_through_json() -> None:
    for rec in planted_records(6):
        again = FeedbackRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
        assert again == rec
        assert again.to_dict() == rec.to_dict()


def test_construction_normalises_and_copies() -> None:
    rec = planted_records(1)[0]
    d = rec.to_dict()
    d["n_bars"] = np.int64(500)
    d["regime"]["volatility"] = np.float32(0.5)
    made = FeedbackRecord.from_dict(d)
    assert type(made.n_bars) is int and type(made.regime["volatility"]) is float
    d["regime"]["volatility"] = 9.0  # the caller's dict changing later does not change the record
    assert made.regime["volatility"] == 0.5


@pytest.mark.parametrize(("field", "value", "message"), [
    ("backtest_score", 1.5, "field 'backtest_score' must be within [0, 1]"),
    ("backtest_score", math.nan, "field 'backtest_score' must be a finite number"),
    ("n_bars", 0, "field 'n_bars' must be an integer >= 1"),
    ("n_bars", 2.5, "field 'n_bars' must be an integer >= 1"),
    ("end_ns", -5, "field 'end_ns' must be at or after start_ns"),
    ("instrument", "", "field 'instrument' must be a non-empty string"),
    ("spec", {"params": {}}, "field 'spec.name' must be a non-empty string"),
    ("spec", {"name": "x", "params": {"p": [1, 2]}}, "field 'spec.params.p' must be a number"),
    ("metrics", {"sharpe": "high"}, "field 'metrics.sharpe' must be a finite number"),
    ("metrics", {"sharpe": math.inf}, "field 'metrics.sharpe' must be a finite number"),
])
def test_validation_names_the_field(field: str, value: object, message: str) -> None:
    d = planted_records(1)[0].to_dict()
    d[field] = value
    with pytest.raises(DiscoveryInputError, match=message.replace("[", r"\[").replace("]", r"\]")) as e:
        FeedbackRecord.from_dict(d)
    assert "rec-0-0" in str(e.value)  # and the record


def test_missing_regime_feature_unknown_and_missing_fields() -> None:
    d = planted_records(1)[0].to_dict()
    del d["regime"]["volatility"]
    with pytest.raises(DiscoveryInputError, match=r"field 'regime' .*missing volatility"):
        FeedbackRecord.from_dict(d)
    d = planted_records(1)[0].to_dict()
    del d["metrics"]
    with pytest.raises(DiscoveryInputError, match="field 'metrics' must be present"):
        FeedbackRecord.from_dict(d)
    d = planted_records(1)[0].to_dict()
    d["colour"] = "red"
    with pytest.raises(DiscoveryInputError, match=r"unknown field.*'colour'"):
        FeedbackRecord.from_dict(d)
    with pytest.raises(DiscoveryInputError, match="field 'id'"):
        FeedbackRecord.from_dict({**planted_records(1)[0].to_dict(), "id": ""})
    good = planted_records(2)
    with pytest.raises(DiscoveryInputError, match=r"record 1: .*field 'n_bars'"):
        records_from_dicts([good[0].to_dict(), {**good[1].to_dict(), "n_bars": -1}])


def test_record_from_a_real_backtest() -> None:
    bars = load_bars(GOOG).iloc[:600]
    spec = StrategySpec("sma_cross", {"fast": 10, "slow": 30})
    result = run_backtest(load_strategy(spec.name, spec.params), bars, BrokerConfig(initial_cash=10_000),
                          spec=spec)
    result.run_id = "run_test_1"
    rec = feedback_from_run(result, load_bars(GOOG))  # the full file: cut to the run's range
    assert rec.id == "run_test_1" and rec.instrument == bars.attrs["instrument"]
    assert rec.spec == spec and rec.n_bars == 600
    assert rec.start_ns == bars.index[0].value and rec.end_ns == bars.index[-1].value
    assert rec.regime == regime_features(bars)
    assert rec.metrics["total_return"] == pytest.approx(result.metrics["return_pct"] / 100)
    assert rec.metrics["max_drawdown"] == pytest.approx(abs(result.metrics["max_drawdown_pct"]) / 100)
    assert rec.metrics["n_trades"] == result.metrics["n_trades"]
    assert 0.0 <= rec.backtest_score <= 1.0
    # the score is zero exactly when the equity's Sharpe is not positive (backtest_score's performance term)
    eq = result.equity["equity"].to_numpy()
    assert (rec.backtest_score == 0.0) == (sharpe_ratio(np.diff(eq) / eq[:-1]) <= 0)
    # a stored score (set by the discovery evaluator) wins over recomputing it
    assert feedback_from_run(result, bars, backtest_score=0.42).backtest_score == 0.42


def test_record_from_run_refuses_what_it_cannot_build() -> None:
    bars = load_bars(GOOG)
    spec = StrategySpec("sma_cross", {"fast": 10, "slow": 30})
    result = run_backtest(load_strategy(spec.name, spec.params), bars.iloc[:40], BrokerConfig(), spec=spec)
    with pytest.raises(DiscoveryInputError, match="no run_id"):
        feedback_from_run(result, bars)
    result.run_id = "short"
    with pytest.raises(DiscoveryInputError, match=r"run short: .*at least 50 bars, got 40"):
        feedback_from_run(result, bars)
    with pytest.raises(DiscoveryInputError, match="do not cover"):
        feedback_from_run(result, bars.iloc[100:])


def test_the_loop_is_a_sink_and_dedups() -> None:
    loop = FeedbackLoop(MemoryFeedbackRepository(), registry=None)
    assert isinstance(loop, FeedbackSink)
    recs = planted_records(5)
    assert loop.submit_feedback(recs) == [r.id for r in recs]
    assert loop.submit_feedback([r.to_dict() for r in recs]) == [r.id for r in recs]  # dicts work too
    assert loop.repo.count_feedback() == 5
    with pytest.raises(DiscoveryInputError, match="record 0"):
        loop.submit_feedback([{"id": "x"}])
    assert loop.repo.count_feedback() == 5
