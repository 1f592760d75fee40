"""A file replayed through the embedded live pipeline (paper broker, in-memory bus) gives exactly the
backtest of the same file: the same orders, fills (bar, size, price, commission), what the strategy
sees at every bar (cash, equity, positions, pending orders) and the same final equity, to the bit."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live_helpers import (
    GOOG,
    PatternBrackets,
    RandomTrader,
    RecordingSmaCross,
    Rotation,
    assert_same_run,
    goog,
    run_both,
    three_instruments,
)

from alphaloop.bus import Envelope, InMemoryBus
from alphaloop.data import load_sample
from alphaloop.execution import BrokerConfig, Commission, FixedSlippage, VolumeShareSlippage

FILL_ON = ["next_open", "close"]


@pytest.mark.parametrize("fill_on", FILL_ON)
def test_sma_cross_on_goog(fill_on):
    config = BrokerConfig(initial_cash=10_000.0, commission=Commission(rate=0.002), fill_on=fill_on)
    bt, res, lv, runner = run_both(RecordingSmaCross, goog(), config)
    assert len(res.fills) > 100
    assert_same_run(bt, res, lv, runner)


@pytest.mark.parametrize("fill_on", FILL_ON)
def test_sma_cross_replayed_from_the_file_path(fill_on):
    """The runner loads the file itself (load_bars), as the CLI would."""
    from alphaloop.backtest import run_backtest
    from alphaloop.live import EmbeddedRunner

    config = BrokerConfig(commission=Commission(rate=0.001, fixed=1.0), spread=0.0005, fill_on=fill_on)
    res = run_backtest(RecordingSmaCross(fast=5, slow=30), goog(), config)
    summary = EmbeddedRunner(RecordingSmaCross(fast=5, slow=30), GOOG, config).run()
    assert summary.final_equity == res.final_equity
    assert summary.fills == len(res.fills) and summary.ended == "end_of_data"


@pytest.mark.parametrize("fill_on", FILL_ON)
def test_pattern_signals_with_limits_stops_and_brackets(fill_on):
    config = BrokerConfig(initial_cash=50_000.0, commission=Commission(rate=0.001), fill_on=fill_on)
    bt, res, lv, runner = run_both(PatternBrackets, goog(), config)
    kinds = {(o.limit is not None, o.stop is not None or "stop" in str(o.reason)) for o in bt.sent}
    assert len(bt.sent) > 100 and len(kinds) >= 3  # market, limit, stop (and stop-limit) entries were sent
    assert any(o.parent_trade is not None for o in runner.engine.ctx.account.orders.values())  # brackets
    assert {"cancelled", "expired", "filled"} <= {str(o.status) for o in bt.sent}
    assert runner.summary.signals > 50
    assert_same_run(bt, res, lv, runner)


@pytest.mark.parametrize("fill_on", FILL_ON)
def test_several_instruments_on_one_timeline(fill_on):
    data = three_instruments()
    config = BrokerConfig(initial_cash=100_000.0, commission=Commission(rate=0.0005, fixed=0.5), fill_on=fill_on)
    bt, res, lv, runner = run_both(Rotation, data, config)
    assert set(res.fills["instrument"]) == set(data)
    assert any(f[0].reason == "end_of_data" and f[0].instrument == "SYNTH_B" for f in lv.fills_seen) or \
        "SYNTH_B" in runner.broker.settled
    assert_same_run(bt, res, lv, runner)


@pytest.mark.parametrize("fill_on", FILL_ON)
def test_costs_spread_and_volume_slippage(fill_on):
    """Partial fills (volume share), spread and slippage: the account mirror follows them exactly."""
    data = load_sample("SYNTH_C").iloc[:600]
    data = data.assign(volume=data["volume"] / 5e4)  # thin volume: orders fill over several bars
    config = BrokerConfig(initial_cash=1e6, commission=Commission(rate=0.001, per_unit=0.01), spread=0.001,
                          slippage=VolumeShareSlippage(0.1, 0.2), fill_on=fill_on)
    bt, res, lv, runner = run_both(lambda: RandomTrader(seed=3, rate=0.5), data, config)
    assert any(str(o[12]) == "partially_filled" or o[13] not in (0.0,) for o in bt.orders_final())
    assert_same_run(bt, res, lv, runner)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(20, 200), two=st.booleans(), fill_on=st.sampled_from(FILL_ON),
       rate=st.sampled_from([0.0, 0.001]), slip=st.sampled_from(["none", "fixed", "volume"]),
       spread=st.sampled_from([0.0, 0.001]))
def test_random_orders_match_the_backtest(seed, n, two, fill_on, rate, slip, spread):
    data = {"X": load_sample("SYNTH_A").iloc[seed % 500: seed % 500 + n]}
    if two:
        data["Y"] = load_sample("SYNTH_B").iloc[seed % 300: seed % 300 + n: 2]
    slippage = {"none": None, "fixed": FixedSlippage(5.0), "volume": VolumeShareSlippage(0.05, 0.1)}[slip]
    config = BrokerConfig(initial_cash=20_000.0, commission=Commission(rate=rate, fixed=0.5 if rate else 0.0),
                          fill_on=fill_on, spread=spread, **({"slippage": slippage} if slippage else {}))
    bt, res, lv, runner = run_both(lambda: RandomTrader(seed=seed, rate=0.4), data if two else data["X"], config)
    assert_same_run(bt, res, lv, runner)


class ShortEverything(RecordingSmaCross):
    name = "short_everything"

    def on_bar(self, ctx):
        if ctx.i == 0:
            ctx.buy(1e6)  # far more than the cash: refused at fill time, in both runs
        if ctx.i == 1:
            ctx.sell(90.0)  # a naked short of nearly the whole account: GOOG's rise ruins it
        self.snapshot(ctx)


def test_a_ruined_account_is_liquidated_and_the_run_stops_as_in_the_backtest():
    bt, res, lv, runner = run_both(ShortEverything, goog(), BrokerConfig(initial_cash=10_000.0))
    summary = runner.summary
    assert summary.ended == "ruined" and summary.final_equity == 0.0 == res.final_equity
    assert summary.bars < len(goog()) and summary.orders_rejected == 1
    assert lv.fills_seen[-1][0].reason == "out_of_money"
    assert_same_run(bt, res, lv, runner)


class JsonBus(InMemoryBus):
    """Every message goes through Envelope.encode/decode, as Redis Streams would carry it."""

    def publish(self, stream, envelope):
        return super().publish(stream, Envelope.decode(envelope.encode()))


@pytest.mark.parametrize("make, data", [(PatternBrackets, "goog"), (Rotation, "three")], ids=["patterns", "several"])
def test_messages_survive_the_wire_format_bit_for_bit(make, data):
    config = BrokerConfig(initial_cash=50_000.0, commission=Commission(rate=0.001))
    frames = goog().iloc[:700] if data == "goog" else three_instruments()
    bt, res, lv, runner = run_both(make, frames, config, bus=JsonBus())
    assert_same_run(bt, res, lv, runner)
