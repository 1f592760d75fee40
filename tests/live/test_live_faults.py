"""Faults are logged with a reason, counted, and the pipeline keeps running: a signal for an unknown
instrument, bad / out-of-order / duplicate bars, redelivered messages, a duplicate order id, a
strategy that raises, a failing recorder, an order sized from NaN."""

from __future__ import annotations

import logging
import math

import pytest
from live_helpers import RecordingSmaCross, goog

from alphaloop.backtest import run_backtest
from alphaloop.bus import InMemoryBus
from alphaloop.core.errors import OrderError
from alphaloop.core.market import Bar, Direction, Signal
from alphaloop.execution import BrokerConfig, Commission
from alphaloop.live import EmbeddedRunner, MarketDataReplay
from alphaloop.live import messages as m
from alphaloop.strategy import Strategy

CONFIG = BrokerConfig(initial_cash=10_000.0, commission=Commission(rate=0.002))


def clean_equity(df=None) -> float:
    return run_backtest(RecordingSmaCross(), goog() if df is None else df, CONFIG).final_equity


def test_a_signal_for_an_unknown_instrument_is_dropped_and_counted(caplog):
    strat = RecordingSmaCross()
    runner = EmbeddedRunner(strat, goog(), CONFIG)
    signal = Signal("NOPE", goog().index[3], "ema_cross", Direction.LONG, 0.5, {"gap": 1.0}, 3)
    runner.bus.publish("signals", m.envelope(m.SIGNAL, "test:1", m.signal_payload(signal), "test"))
    with caplog.at_level(logging.WARNING, logger="alphaloop.live"):
        summary = runner.run()
    assert summary.errors == {"unknown_instrument_signal": 1}
    assert "unknown instrument 'NOPE'" in caplog.text
    assert summary.signals == 0 and summary.final_equity == clean_equity()
    assert runner.engine.health()["status"] == "stopped"


class Faulty:
    """A bar source that replays GOOG but slips in bad bars: an old one, a repeated one, a
    non-finite one, one for an instrument nobody trades."""

    def __init__(self, df):
        self.replay = MarketDataReplay.from_sources(df)
        self.instruments = self.replay.instruments
        self.speed, self.mode = 0.0, "replay"

    def steps(self):
        history = []
        for k, step in enumerate(self.replay.steps()):
            history.append(step)
            yield step
            bar = step[0][0]
            if k == 30:
                yield history[20]  # out of order
            if k == 40:
                yield [(bar, False)]  # the same bar again
            if k == 50:
                yield [(Bar(bar.instrument, bar.time + (bar.time - history[-2][0][0].time) / 2, bar.open, bar.high,
                            bar.low, math.nan, bar.volume), False)]
            if k == 60:
                yield [(Bar("ZZZ", bar.time, 1.0, 1.0, 1.0, 1.0, 0.0), False)]


def test_bad_bars_are_dropped_with_a_reason_and_the_run_is_unchanged(caplog):
    df = goog().iloc[:300]
    runner = EmbeddedRunner(RecordingSmaCross(), Faulty(df), CONFIG)
    with caplog.at_level(logging.WARNING, logger="alphaloop.live"):
        summary = runner.run()
    assert summary.errors == {"out_of_order_bar": 1, "duplicate_bar": 1, "invalid_bar": 1, "unknown_instrument_bar": 1}
    for words in ("out of order bar", "duplicate bar", "non-finite", "unknown instrument 'ZZZ'"):
        assert words in caplog.text
    assert summary.bars == len(df) and summary.final_equity == clean_equity(df)


class DuplicatingBus(InMemoryBus):
    """Delivers every message twice (at-least-once delivery at its worst)."""

    def publish(self, stream, envelope):
        super().publish(stream, envelope)
        return super().publish(stream, envelope)


def test_redelivered_messages_are_dropped_by_id():
    from live_helpers import PatternBrackets, assert_same_run, run_both

    bt, res, lv, runner = run_both(PatternBrackets, goog().iloc[:800], CONFIG, bus=DuplicatingBus())
    assert_same_run(bt, res, lv, runner)  # no error either: a redelivery is normal, not a fault
    assert runner.engine.counts["duplicate_messages"] > 1000
    assert runner.broker.counts["duplicate_messages"] == runner.summary.orders + runner.engine.counts["cancels_sent"]


class ReplayingBus(InMemoryBus):
    """Sends order 3 a second time under a new message id (a producer that retried): the broker
    must refuse it rather than place it twice."""

    def publish(self, stream, envelope):
        out = super().publish(stream, envelope)
        if envelope.kind == m.ORDER and envelope.payload["id"] == 3:
            super().publish(stream, m.envelope(m.ORDER, "retry:1", dict(envelope.payload), "test"))
        return out


def test_a_duplicate_order_id_is_refused(caplog):
    runner = EmbeddedRunner(RecordingSmaCross(), goog(), CONFIG, bus=ReplayingBus())
    with caplog.at_level(logging.WARNING, logger="alphaloop.live"):
        summary = runner.run()
    assert summary.errors == {"broker_duplicate_order_id": 1}
    assert "order 3 refused" in caplog.text
    assert summary.final_equity == clean_equity()


class Raises(RecordingSmaCross):
    """Raises on some bars (after doing nothing) and on some signals."""

    name = "raises"
    params = {**RecordingSmaCross.params, "skip": False}

    def pattern_detectors(self):
        return [("ema_cross", {"fast": 5, "slow": 20})]

    def on_signal(self, ctx, signal):
        if not self.skip:
            raise ValueError("bad signal handling")

    def on_bar(self, ctx):
        if ctx.i % 50 == 7:
            if self.skip:
                return
            raise RuntimeError(f"boom at {ctx.i}")
        super().on_bar(ctx)


def test_a_strategy_exception_skips_that_callback_only(caplog):
    df = goog()
    res = run_backtest(Raises(skip=True), df, CONFIG)  # the same strategy, returning where live raises
    runner = EmbeddedRunner(Raises(), df, CONFIG)
    with caplog.at_level(logging.WARNING, logger="alphaloop.live"):
        summary = runner.run()
    n_bars = sum(1 for i in range(len(df)) if i % 50 == 7)
    assert summary.errors == {"strategy_error": n_bars + summary.signals} and summary.signals > 10
    assert "Raises.on_bar failed at bar 7" in caplog.text and "RuntimeError: boom at 7" in caplog.text
    assert summary.last_error is not None and "on_" in summary.last_error
    assert summary.final_equity == res.final_equity and summary.fills == len(res.fills)


class FlakyRecorder:
    def __init__(self):
        self.calls = 0
        self.fills = []

    def _maybe_fail(self):
        self.calls += 1
        if self.calls % 3 == 0:
            raise ConnectionError("database went away")

    def record_decision(self, decision, order=None, *, run_id):
        self._maybe_fail()

    def record_order(self, row):
        self._maybe_fail()
        return True

    def record_fill(self, row, order_status=None):
        self._maybe_fail()
        self.fills.append(row)
        return True


def test_a_failing_recorder_is_counted_and_trading_goes_on(caplog):
    recorder = FlakyRecorder()
    with caplog.at_level(logging.WARNING, logger="alphaloop.live"):
        summary = EmbeddedRunner(RecordingSmaCross(), goog(), CONFIG, recorder=recorder).run()
    assert summary.errors == {"recorder_error": recorder.calls // 3}
    assert "recorder.record_" in caplog.text and "database went away" in caplog.text
    assert summary.final_equity == clean_equity()


class NaNSizer(Strategy):
    name = "nan_sizer"

    def init(self, ctx):
        self.refused = []

    def on_bar(self, ctx):
        if ctx.i == 3:
            for kwargs in ({"size": math.nan}, {"size": math.inf}, {"fraction": math.nan}, {"size": 1.0, "sl": math.nan},
                           {"size": 1.0, "limit": math.nan}):
                try:
                    ctx.buy(**kwargs)
                except OrderError as e:
                    self.refused.append(str(e))


def test_no_order_is_ever_sized_from_nan():
    strat = NaNSizer()
    runner = EmbeddedRunner(strat, goog().iloc[:20], CONFIG)
    summary = runner.run()
    assert len(strat.refused) == 5 and summary.orders == 0
    # and an order that reaches the broker with a NaN in it anyway is rejected there
    bus = InMemoryBus()
    runner = EmbeddedRunner(RecordingSmaCross(), goog().iloc[:40], CONFIG, bus=bus)
    bad = m.order_payload(m.order_from_payload({"id": 999, "instrument": runner.instruments[0], "size": 1.0}),
                          reference_price=100.0)
    bad["size"] = math.nan
    bus.publish("orders", m.envelope(m.ORDER, "test:nan", bad, "test"))
    summary = runner.run()
    assert summary.orders_rejected == 1 and runner.engine.ctx.account.orders[999].status == "rejected"
    assert "non-finite" in runner.engine.ctx.account.orders[999].reason


def test_an_init_failure_is_fatal():
    class BadInit(Strategy):
        name = "bad_init"

        def init(self, ctx):
            raise KeyError("missing")

        def on_bar(self, ctx):
            pass

    from alphaloop.core.errors import StrategyError

    with pytest.raises(StrategyError, match=r"BadInit.init failed: KeyError"):
        EmbeddedRunner(BadInit(), goog().iloc[:10]).run()
