"""Order types, brackets, time in force and cost models against hand-computed fills."""

from __future__ import annotations

import pandas as pd
import pytest

from alphaloop.backtest import run_backtest
from alphaloop.core.errors import AlphaloopError, ConfigError
from alphaloop.execution import BrokerConfig, Commission, FixedSlippage, VolumeShareSlippage
from alphaloop.strategy import Strategy

# bar:        0      1      2      3      4      5      6      7
OPEN = [100.0, 101.0, 103.0, 98.0, 95.0, 99.0, 104.0, 106.0]
HIGH = [102.0, 104.0, 105.0, 99.0, 100.0, 105.0, 107.0, 108.0]
LOW = [99.0, 100.0, 97.0, 94.0, 93.0, 98.0, 103.0, 101.0]
CLOSE = [101.0, 103.0, 98.0, 95.0, 99.0, 104.0, 106.0, 102.0]
VOLUME = [1000.0, 40.0, 1000.0, 1000.0, 1000.0, 1000.0, 1000.0, 1000.0]


def bars(freq: str = "h") -> pd.DataFrame:
    index = pd.date_range("2024-03-04 20:00", periods=len(OPEN), freq=freq, tz="UTC", name="time")
    return pd.DataFrame({"open": OPEN, "high": HIGH, "low": LOW, "close": CLOSE, "volume": VOLUME}, index=index)


class Script(Strategy):
    """Runs ``actions[bar](ctx)`` on the given bars and keeps the orders it sent."""

    name = "script"

    def __init__(self, actions):
        super().__init__()
        self.actions = actions
        self.orders = []

    def on_bar(self, ctx):
        action = self.actions.get(ctx.i)
        if action is not None:
            out = action(ctx)
            self.orders.extend(out if isinstance(out, list) else [out])


def run(actions, freq="h", **config):
    strategy = Script(actions)
    config.setdefault("initial_cash", 100_000.0)
    return run_backtest(strategy, bars(freq), BrokerConfig(**config)), strategy


def fills(res):
    return list(zip(res.fills["bar"], res.fills["size"], res.fills["price"]))


def test_market_order_fills_at_next_open():
    res, _ = run({0: lambda c: c.buy(10)})
    assert fills(res)[0] == (1, 10.0, 101.0)


def test_market_order_fills_at_this_close_when_configured():
    res, _ = run({0: lambda c: c.buy(10)}, fill_on="close")
    assert fills(res)[0] == (0, 10.0, 101.0)
    res, _ = run({1: lambda c: c.sell(10)}, fill_on="close")
    assert fills(res)[0] == (1, -10.0, 103.0)


def test_limit_buy_waits_for_the_price_and_fills_at_the_better_of_open_and_limit():
    res, _ = run({0: lambda c: c.buy(5, limit=97.5)})  # bar 2 trades down to 97 -> fills at the limit
    assert fills(res)[0] == (2, 5.0, 97.5)
    res, _ = run({2: lambda c: c.buy(5, limit=99.0)})  # bar 3 opens at 98, below the limit -> the open
    assert fills(res)[0] == (3, 5.0, 98.0)


def test_stop_buy_triggers_on_the_high_and_gaps_fill_at_the_open():
    res, _ = run({0: lambda c: c.buy(5, stop=104.5)})  # bar 2 high 105 >= 104.5, opened at 103
    assert fills(res)[0] == (2, 5.0, 104.5)
    res, _ = run({4: lambda c: c.buy(5, stop=101.0)})  # bar 5 high 105: open 99 < stop -> stop price
    assert fills(res)[0] == (5, 5.0, 101.0)
    res, _ = run({5: lambda c: c.buy(5, stop=103.5)})  # bar 6 opens at 104 above the stop -> the open
    assert fills(res)[0] == (6, 5.0, 104.0)


def test_sell_stop_and_sell_limit():
    res, _ = run({1: lambda c: c.sell(3, stop=97.5)})  # bar 2 low 97 <= 97.5 -> min(open 103, stop)
    assert fills(res)[0] == (2, -3.0, 97.5)
    res, _ = run({0: lambda c: c.sell(3, limit=104.5)})  # bar 2 high 105 -> max(open 103, limit)
    assert fills(res)[0] == (2, -3.0, 104.5)


def test_stop_limit_with_limit_beyond_stop_does_not_fill_on_the_trigger_bar():
    # bar 1: high 104 triggers the stop at 103.5; the limit 101 lies below it, and which came first
    # inside the bar is unknown -> not on bar 1. Bar 2 trades down to 97 -> fills at the limit 101?
    # no: bar 2 opens at 103 > 101 and trades through 101 -> limit price.
    res, _ = run({0: lambda c: c.buy(2, stop=103.5, limit=101.0)})
    assert fills(res)[0] == (2, 2.0, 101.0)


def test_stop_loss_and_take_profit_both_in_one_bar_take_the_loss():
    # long at bar 1 open (101); bar 2 range 97..105 touches SL 99 and TP 104.5 -> the stop-loss fills
    res, _ = run({0: lambda c: c.buy(10, sl=99.0, tp=104.5)})
    assert res.trades["exit_bar"].tolist() == [2]
    assert res.trades["exit_price"].tolist() == [99.0]
    assert res.trades["exit_reason"].tolist() == ["stop_loss"]
    assert res.trades["pnl"].tolist() == [pytest.approx(10 * (99.0 - 101.0))]


def test_take_profit_alone_fills_at_its_price_and_cancels_the_stop_loss():
    res, _ = run({4: lambda c: c.buy(10, sl=90.0, tp=104.0)})  # entry bar 5 at 99; bar 5 high 105 >= 104
    assert res.trades[["entry_bar", "exit_bar", "exit_price", "exit_reason"]].values.tolist() == [
        [5, 5, 104.0, "take_profit"]]
    assert len(res.fills) == 2  # the stop-loss never filled


def test_short_round_trip_pnl():
    res, _ = run({0: lambda c: c.sell(10), 3: lambda c: c.close_position()})
    t = res.trades.iloc[0]
    assert (t["entry_bar"], t["exit_bar"], t["size"]) == (1, 4, -10.0)
    assert t["pnl"] == pytest.approx(-10 * (95.0 - 101.0))
    assert res.final_equity == pytest.approx(100_000 + 60.0)


def test_day_order_expires_at_the_utc_date_change():
    # bars are hourly from 20:00 UTC: bars 0-3 are on the 4th, bar 4 on the 5th
    res, strat = run({0: lambda c: c.buy(1, limit=93.5, tif="day")})  # bar 4 low 93 would fill it
    assert res.fills.empty
    assert strat.orders[0].status == "expired"


def test_ioc_order_is_cancelled_after_its_first_bar():
    res, strat = run({0: lambda c: c.buy(1, limit=96.0, tif="ioc")})  # bar 1 low 100: no fill
    assert res.fills.empty
    assert strat.orders[0].status == "cancelled"


def test_gtd_order_expires_after_its_time():
    expiry = pd.Timestamp("2024-03-04 21:30", tz="UTC")  # after bar 1, before bar 2
    res, strat = run({0: lambda c: c.buy(1, limit=97.5, tif="gtd", expires_at=expiry)})
    assert res.fills.empty
    assert strat.orders[0].status == "expired"


def test_commission_models_closed_form():
    com = Commission(rate=0.001, per_unit=0.01, fixed=1.5)
    res, _ = run({0: lambda c: c.buy(10), 2: lambda c: c.sell(10)}, commission=com)
    entry = 1.5 + 10 * 101.0 * 0.001 + 10 * 0.01
    exit_ = 1.5 + 10 * 98.0 * 0.001 + 10 * 0.01
    assert res.fills["commission"].tolist() == pytest.approx([entry, exit_])
    assert res.final_equity == pytest.approx(100_000 + 10 * (98.0 - 101.0) - entry - exit_)


def test_spread_raises_the_entry_and_exits_at_the_raw_price():
    res, _ = run({0: lambda c: c.buy(10), 2: lambda c: c.close_position()}, spread=0.01)
    assert res.trades["entry_price"].tolist() == [pytest.approx(101.0 * 1.01)]
    assert res.trades["exit_price"].tolist() == [98.0]


def test_fixed_slippage_moves_market_fills_against_the_trader_but_not_limits():
    res, _ = run({0: lambda c: c.buy(10), 2: lambda c: c.sell(10)}, slippage=FixedSlippage(20.0))
    assert res.fills["price"].tolist() == pytest.approx([101.0 * 1.002, 98.0 * 0.998])
    res, _ = run({0: lambda c: c.buy(5, limit=97.5)}, slippage=FixedSlippage(20.0))
    assert res.fills["price"].iloc[0] == 97.5


def test_volume_share_caps_the_fill_and_carries_the_rest():
    # bar 1 volume 40 * 25% = 10 units; the remaining 5 fill on bar 2
    res, strat = run({0: lambda c: c.buy(15)}, slippage=VolumeShareSlippage(max_share=0.25, impact=0.0))
    assert res.fills[["bar", "size"]].values.tolist()[:2] == [[1, 10.0], [2, 5.0]]
    assert strat.orders[0].status == "filled"
    # with impact, the price moves by impact * share^2
    res, _ = run({0: lambda c: c.buy(4)}, slippage=VolumeShareSlippage(max_share=0.25, impact=0.5))
    assert res.fills["price"].iloc[0] == pytest.approx(101.0 * (1 + 0.5 * 0.1**2))


def test_relative_order_uses_all_available_cash_in_whole_units():
    res, _ = run({0: lambda c: c.buy()}, initial_cash=1000.0, commission=Commission(rate=0.002))
    # floor(1000 / (101 * 1.002)) = 9 units
    assert res.fills["size"].iloc[0] == 9.0


def test_insufficient_cash_is_rejected_with_a_reason():
    res, strat = run({0: lambda c: c.buy(10_000)}, initial_cash=1000.0)
    assert res.fills.empty
    assert strat.orders[0].status == "rejected" and strat.orders[0].reason == "insufficient cash"


def test_account_ruin_liquidates_and_stops():
    # short 90 units at 100 with 10,000 cash; equity = 10,000 - 90 * (close - 100) <= 0 from close 211.1
    close = [100.0, 100.0, 150.0, 200.0, 215.0, 300.0, 310.0]
    index = pd.date_range("2024-01-01", periods=len(close), freq="D", tz="UTC", name="time")
    df = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=index)
    strategy = Script({0: lambda c: c.sell(90)})
    res = run_backtest(strategy, df, BrokerConfig(initial_cash=10_000.0))
    assert res.equity["equity"].tolist() == pytest.approx([10_000, 10_000, 5_500, 1_000, 0, 0, 0])
    assert res.trades[["exit_bar", "exit_price", "exit_reason"]].values.tolist() == [[4, 215.0, "out_of_money"]]


@pytest.mark.parametrize("action,match", [
    (lambda c: c.buy(0), "size must be a positive"),
    (lambda c: c.buy(-3), "size must be a positive"),
    (lambda c: c.buy(1, fraction=0.5), "not both"),
    (lambda c: c.buy(fraction=1.5), "fraction"),
    (lambda c: c.buy(1, sl=105.0), "SL < price < TP"),
    (lambda c: c.sell(1, tp=110.0), "TP < price < SL"),
    (lambda c: c.buy(1, tif="forever"), "time in force"),
    (lambda c: c.buy(1, tif="gtd"), "expires_at"),
    (lambda c: c.buy(1, instrument="NOPE"), "unknown instrument"),
])
def test_bad_orders_are_refused_at_submission(action, match):
    with pytest.raises(AlphaloopError, match=match):
        run({0: action})


def test_bad_broker_configuration():
    with pytest.raises(ConfigError):
        BrokerConfig(initial_cash=0)
    with pytest.raises(ConfigError):
        BrokerConfig(fill_on="tomorrow")
    with pytest.raises(ConfigError):
        Commission(rate=0.5)
