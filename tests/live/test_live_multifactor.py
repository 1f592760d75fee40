"""The flagship ``ml_multifactor`` strategy (ML predictor, sentiment, patterns, risk rules, feature
rows) decides, trades and records exactly the same live as in its backtest."""

from __future__ import annotations

import math
from collections import Counter

from live_helpers import goog

from alphaloop.backtest import run_backtest
from alphaloop.core.predictions import InferencePath, Prediction, Sentiment
from alphaloop.execution import BrokerConfig, Commission
from alphaloop.live import EmbeddedRunner
from alphaloop.strategy.builtin import MlMultiFactor
from alphaloop.strategy.services import Services


class FakePredictor:
    """A deterministic stand-in for the ONNX runtime: a function of the feature row."""

    def predict(self, features, *, instrument, bar_time=None, timeout=None):
        x = float(features[0]) if math.isfinite(features[0]) else 0.0
        path = InferencePath.ONNX_CPU if (bar_time // 86_400_000_000_000) % 3 else InferencePath.DEFAULT
        return Prediction(value=math.tanh(50 * x) * 0.01, confidence=0.8, model="fake", version=3, path=path,
                          latency_ms=0.05)


class FakeNews:
    def instrument_sentiment(self, instrument, at=None):
        s = math.sin(at.value / 86_400_000_000_000 / 7)
        return Sentiment(score=s, confidence=abs(s), label="positive" if s > 0 else "negative", source="fake")


def test_ml_multifactor_live_equals_its_backtest():
    df = goog().iloc[:260]
    config = BrokerConfig(initial_cash=100_000.0, commission=Commission(rate=0.001))
    params = {"on_bars": True, "threshold": 0.2, "cooldown_bars": 3}
    res = run_backtest(MlMultiFactor(**params), df, config,
                       services=Services(predictor=FakePredictor(), sentiment=FakeNews()))
    decisions = []
    runner = EmbeddedRunner(MlMultiFactor(**params), df, config, on_decision=decisions.append,
                            services=Services(predictor=FakePredictor(), sentiment=FakeNews(), concurrent=True))
    summary = runner.run()
    assert summary.errors == {}
    assert summary.final_equity == res.final_equity and summary.fills == len(res.fills) > 10

    def strip(d):  # a decision without its wall-clock latency
        return {k: v for k, v in d.to_dict().items() if k != "latency_us"}

    assert [strip(d) for d in decisions] == [strip(d) for d in res.decisions]
    assert summary.decisions == len(res.decisions)
    assert summary.inference_paths == dict(Counter(d.inference_path for d in res.decisions if d.inference_path))
    assert set(summary.inference_paths) == {"onnx_cpu", "default"}
    assert sum(summary.rejections.values()) == sum(1 for d in res.decisions if d.risk_rule and d.action == "hold")
    assert summary.latency_p50_us is not None and summary.latency_p99_us >= summary.latency_p50_us
