"""Risk limits: every rule triggers and names itself; kill switch, daily baseline, cooldowns; and
sizing followed by risk never sends an order over a limit (hypothesis)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from alphaloop.core.config import load_settings
from alphaloop.core.errors import ConfigError, OrderError
from alphaloop.strategy.risk import RiskLimits, RiskManager, to_ns
from alphaloop.strategy.sizing import SizingConfig, size_order

NAN, INF = math.nan, math.inf
H = 3_600_000_000_000  # one hour in ns
DAY = 24 * H
T0 = to_ns(datetime(2024, 3, 4, tzinfo=UTC))  # a midnight, UTC
LOOSE = {"max_position_size": 1e9, "max_instrument_exposure": 100.0, "max_gross_exposure": 100.0}


def rm(**limits) -> RiskManager:
    return RiskManager(RiskLimits(**{**LOOSE, **limits}))


# ----------------------------------------------------------------------------- pass / clip / reject

def test_order_within_limits_passes_unchanged():
    m = RiskManager()
    v = m.check("X", T0, 0.0, 37.5, 10.0, 10_000.0)
    assert v == (37.5, None, "") and not v.rejected and not v.clipped
    assert m.check("X", T0, 0.0, 0.0, 10.0, 10_000.0) == (0.0, None, "")


def test_max_position_size_clips_then_rejects():
    m = rm(max_position_size=100.0)
    v = m.check("X", T0, 80.0, 50.0, 10.0, 10_000.0)
    assert (v.allowed_delta, v.rule, v.clipped) == (20.0, "max_position_size", True)
    assert "X" in v.detail and "100" in v.detail
    v = m.check("X", T0, -100.0, -10.0, 10.0, 10_000.0)
    assert (v.allowed_delta, v.rule, v.rejected) == (0.0, "max_position_size", True)


def test_instrument_exposure_clips_notional():
    m = rm(max_instrument_exposure=0.2)  # 0.2 * 10000 / 50 = 40 units
    v = m.check("X", T0, 0.0, 100.0, 50.0, 10_000.0)
    assert (v.allowed_delta, v.rule) == (40.0, "instrument_exposure")
    v = m.check("X", T0, 0.0, -100.0, 50.0, 10_000.0)
    assert (v.allowed_delta, v.rule) == (-40.0, "instrument_exposure")


def test_gross_exposure_counts_positions_in_other_instruments():
    m = rm(max_gross_exposure=0.6)
    m.on_fill("AAA", 100.0, 50.0, T0)  # 5000 notional of the 6000 allowed
    v = m.check("BBB", T0, 0.0, 500.0, 10.0, 10_000.0)
    assert (v.allowed_delta, v.rule) == (100.0, "gross_exposure")
    m.mark("AAA", 55.0)  # AAA now worth 5500: room for 50 BBB
    assert m.check("BBB", T0, 0.0, 500.0, 10.0, 10_000.0).allowed_delta == 50.0
    assert m.gross_exposure() == 5500.0
    # the caller may supply the other instruments' exposure itself
    v = m.check("BBB", T0, 0.0, 500.0, 10.0, 10_000.0, other_exposure=2000.0)
    assert (v.allowed_delta, v.rule) == (400.0, "gross_exposure")
    v = m.check("BBB", T0, 0.0, 500.0, 10.0, 10_000.0, other_exposure=NAN)
    assert (v.allowed_delta, v.rule) == (0.0, "invalid_exposure")


def test_the_tightest_limit_is_named():
    m = rm(max_position_size=300.0, max_instrument_exposure=0.2, max_gross_exposure=0.5)
    # units 300; instrument 0.2*10000/10 = 200; gross (5000 - 4000)/10 = 100
    v = m.check("X", T0, 0.0, 1000.0, 10.0, 10_000.0, other_exposure=4000.0)
    assert (v.allowed_delta, v.rule) == (100.0, "gross_exposure")
    v = m.check("X", T0, 0.0, 1000.0, 10.0, 10_000.0, other_exposure=0.0)
    assert (v.allowed_delta, v.rule) == (200.0, "instrument_exposure")


def test_clipped_entries_are_rounded_down_to_lots_and_fitting_ones_are_not():
    m = rm(max_position_size=45.0, lot_size=10.0)
    assert m.check("X", T0, 0.0, 100.0, 1.0, 1e6).allowed_delta == 40.0
    assert m.check("X", T0, 3.0, 100.0, 1.0, 1e6).allowed_delta == 40.0  # to 43: 40 more lots' worth
    assert m.check("X", T0, 0.0, 44.5, 1.0, 1e6) == (44.5, None, "")  # fits: passed as sent


def test_float_rounding_never_clips_a_size_that_fits():
    m = rm(max_instrument_exposure=0.1)
    units = 0.1 * 1000.0 / 3.3 * (1 + 1e-12)  # the cap, a few ulps over as another formula may give it
    assert m.check("X", T0, 0.0, units, 3.3, 1000.0) == (units, None, "")
    assert m.check("X", T0, 0.0, units * (1 + 1e-6), 3.3, 1000.0).rule == "instrument_exposure"


def test_reductions_are_always_allowed_even_over_limits():
    m = rm(max_position_size=100.0)
    assert m.check("X", T0, 500.0, -100.0, 10.0, 10_000.0) == (-100.0, None, "")
    assert m.check("X", T0, -500.0, 500.0, 10.0, 10_000.0) == (500.0, None, "")
    # with prices and equity that make every limit unknowable, too
    assert m.check("X", T0, 500.0, -500.0, NAN, NAN).rule is None


def test_a_flip_keeps_its_close_when_the_new_side_is_cut():
    m = rm(max_position_size=100.0)
    v = m.check("X", T0, 60.0, -260.0, 10.0, 10_000.0)  # close 60, open 200 short: 100 allowed
    assert (v.allowed_delta, v.rule) == (-160.0, "max_position_size")
    m.halt(T0)
    v = m.check("X", T0, 60.0, -260.0, 10.0, 10_000.0)  # entries halted: only the close goes
    assert (v.allowed_delta, v.rule, v.clipped) == (-60.0, "kill_switch", True)


@pytest.mark.parametrize(("cur", "delta", "price", "equity", "rule"), [
    (0.0, NAN, 10.0, 1e4, "invalid_order"),
    (NAN, 5.0, 10.0, 1e4, "invalid_order"),
    (0.0, INF, 10.0, 1e4, "invalid_order"),
    (0.0, 5.0, NAN, 1e4, "invalid_price"),
    (0.0, 5.0, 0.0, 1e4, "invalid_price"),
    (0.0, 5.0, -1.0, 1e4, "invalid_price"),
    (0.0, 5.0, 10.0, NAN, "invalid_equity"),
    (0.0, 5.0, 10.0, 0.0, "invalid_equity"),
    (0.0, 5.0, 10.0, -50.0, "invalid_equity"),
])
def test_invalid_inputs_reject_entries(cur, delta, price, equity, rule):
    v = RiskManager().check("X", T0, cur, delta, price, equity)
    assert (v.allowed_delta, v.rule) == (0.0, rule)
    assert math.copysign(1.0, v.allowed_delta) == 1.0


# ----------------------------------------------------------------------------- kill switch

def test_daily_loss_trips_the_kill_switch_which_blocks_entries_but_not_exits():
    m = rm(max_daily_loss=0.05)
    m.on_equity(T0 + H, 10_000.0)
    m.on_equity(T0 + 2 * H, 9_600.0)
    assert not m.halted
    m.on_equity(T0 + 3 * H, 9_400.0)  # 6% below the day's start
    ks = m.kill_switch
    assert ks is not None and (ks.rule, ks.time_ns) == ("daily_loss", T0 + 3 * H)
    assert ks.time == datetime(2024, 3, 4, 3, tzinfo=UTC) and "6.00%" in ks.detail
    v = m.check("X", T0 + 3 * H, 0.0, 10.0, 10.0, 9_400.0)
    assert (v.allowed_delta, v.rule) == (0.0, "daily_loss") and "reset()" in v.detail
    assert m.check("X", T0 + 3 * H, 10.0, 5.0, 10.0, 9_400.0).rule == "daily_loss"  # adding is an entry
    assert m.check("X", T0 + 3 * H, 10.0, -10.0, 10.0, 9_400.0) == (-10.0, None, "")
    # a new day and a recovery do not clear it: only reset() does
    m.on_equity(T0 + DAY + H, 11_000.0)
    assert m.check("X", T0 + DAY + H, 0.0, 10.0, 10.0, 11_000.0).rule == "daily_loss"
    assert m.kill_switch == ks  # the first trip is kept
    m.reset()
    assert not m.halted and m.kill_switch is None
    assert m.check("X", T0 + DAY + H, 0.0, 10.0, 10.0, 11_000.0) == (10.0, None, "")


def test_new_utc_day_resets_the_daily_loss_baseline():
    m = rm(max_daily_loss=0.05)
    m.on_equity(T0 + 1 * H, 10_000.0)
    m.on_equity(T0 + 23 * H, 9_600.0)  # -4% on day one
    m.on_equity(T0 + DAY + 1 * H, 9_500.0)
    assert m.day_start_equity == 9_600.0  # equity standing at midnight: the last mark of day one
    m.on_equity(T0 + DAY + 2 * H, 9_200.0)  # -4.2% today, -8% since yesterday's start
    assert not m.halted
    m.on_equity(T0 + DAY + 3 * H, 9_100.0)  # -5.2% today
    assert m.kill_switch.rule == "daily_loss"


def test_daily_bars_measure_each_days_loss_from_the_previous_close():
    m = rm(max_daily_loss=0.05)
    m.on_equity(T0, 10_000.0)
    m.on_equity(T0 + DAY, 9_600.0)
    assert not m.halted
    m.on_equity(T0 + 2 * DAY, 9_100.0)  # -5.2% on the day
    assert m.kill_switch.rule == "daily_loss"


def test_max_drawdown_trips_from_the_peak_across_days():
    m = rm(max_drawdown=0.10)
    m.on_equity(T0, 10_000.0)
    m.on_equity(T0 + DAY, 12_000.0)
    m.on_equity(T0 + 2 * DAY, 10_900.0)  # 9.2% below the peak
    assert not m.halted and m.peak_equity == 12_000.0
    m.on_equity(T0 + 3 * DAY, 10_700.0)  # 10.8%
    assert (m.kill_switch.rule, m.kill_switch.time_ns) == ("max_drawdown", T0 + 3 * DAY)
    v = m.check("X", T0 + 3 * DAY, -5.0, -5.0, 10.0, 10_700.0)
    assert (v.allowed_delta, v.rule) == (0.0, "max_drawdown")
    assert m.check("X", T0 + 3 * DAY, -5.0, 5.0, 10.0, 10_700.0) == (5.0, None, "")
    # reset re-bases the peak at the last equity: the same loss does not trip it again at once
    m.reset()
    m.on_equity(T0 + 4 * DAY, 10_700.0)
    assert not m.halted and m.peak_equity == 10_700.0
    m.on_equity(T0 + 5 * DAY, 9_600.0)  # 10.3% below the new peak
    assert m.kill_switch.rule == "max_drawdown"


def test_the_equity_given_to_check_can_trip_the_kill_switch():
    m = rm(max_drawdown=0.10)
    m.on_equity(T0, 10_000.0)
    v = m.check("X", T0 + H, 0.0, 1.0, 10.0, 8_000.0)
    assert (v.allowed_delta, v.rule) == (0.0, "max_drawdown") and m.halted


def test_nan_equity_is_ignored_by_the_kill_switch():
    m = rm(max_drawdown=0.10, max_daily_loss=0.05)
    m.on_equity(T0, 10_000.0)
    m.on_equity(T0 + H, NAN)
    assert not m.halted and m.peak_equity == 10_000.0


def test_manual_halt():
    m = RiskManager()
    m.halt(datetime(2024, 3, 4, 12, tzinfo=UTC), "operator")
    v = m.check("X", T0, 0.0, 1.0, 10.0, 10_000.0)
    assert (v.rule, m.kill_switch.detail) == ("kill_switch", "operator")
    m.reset()
    assert m.check("X", T0, 0.0, 1.0, 10.0, 10_000.0).rule is None


# ----------------------------------------------------------------------------- cooldown

def test_cooldown_after_a_stop_out_lasts_exactly_n_bars():
    m = rm(cooldown_bars=3)
    times = [T0 + k * H for k in range(8)]
    m.on_equity(times[0], 10_000.0)
    # bar 1: the stop fills first, then the strategy runs (on_equity, check) on the same bar
    m.on_fill("X", -100.0, 10.0, times[1], "stop_loss")
    blocked = []
    for t in times[1:]:
        m.on_equity(t, 10_000.0)
        v = m.check("X", t, 0.0, 50.0, 10.0, 10_000.0)
        blocked.append(v.rule == "cooldown")
        if v.rule == "cooldown":
            assert v.allowed_delta == 0.0 and "stop-out" in v.detail
            assert m.check("Y", t, 0.0, 50.0, 10.0, 10_000.0).rule is None  # only that instrument
            assert m.check("X", t, 20.0, -20.0, 10.0, 10_000.0).rule is None  # exits still go
    assert blocked == [True, True, True, False, False, False, False]


def test_cooldown_of_a_fill_between_bars_starts_with_the_next_bar():
    m = rm(cooldown_bars=2)
    m.on_equity(T0, 10_000.0)
    m.on_fill("X", -1.0, 10.0, T0 + H // 2, "stop_loss")  # live: a stop fills mid-bar
    blocked = []
    for k in range(1, 5):
        m.on_equity(T0 + k * H, 10_000.0)
        blocked.append(m.check("X", T0 + k * H, 0.0, 1.0, 10.0, 10_000.0).rule == "cooldown")
    assert blocked == [True, True, False, False]


def test_cooldown_by_duration_lasts_exactly_the_duration():
    m = rm(cooldown=timedelta(minutes=30))
    stop = pd.Timestamp("2024-03-04 10:00:00.000000123", tz="UTC")
    m.on_fill("X", 5.0, 10.0, stop, "stop_loss")
    assert m.check("X", stop + pd.Timedelta(minutes=29, seconds=59), 0.0, -1.0, 10.0, 1e4).rule == "cooldown"
    assert m.check("X", stop + pd.Timedelta(minutes=30) - pd.Timedelta(1, "ns"), 0.0, -1.0, 10.0, 1e4).rule \
        == "cooldown"
    assert m.check("X", stop + pd.Timedelta(minutes=30), 0.0, -1.0, 10.0, 1e4).rule is None


def test_only_stop_reasons_start_a_cooldown():
    m = rm(cooldown=timedelta(hours=1), stop_reasons={"stop_loss", "trailing_stop"})
    m.on_fill("X", -1.0, 10.0, T0, "take_profit")
    m.on_fill("Y", -1.0, 10.0, T0, None)
    m.on_fill("Z", -1.0, 10.0, T0, "trailing_stop")
    assert [m.check(i, T0 + 1, 0.0, 1.0, 10.0, 1e4).rule for i in "XYZ"] == [None, None, "cooldown"]


def test_a_new_stop_out_restarts_the_cooldown():
    m = rm(cooldown=timedelta(minutes=10))
    m.on_fill("X", -1.0, 10.0, T0, "stop_loss")
    m.on_fill("X", -1.0, 10.0, T0 + 5 * 60 * 10**9, "stop_loss")
    assert m.check("X", T0 + 12 * 60 * 10**9, 0.0, 1.0, 10.0, 1e4).rule == "cooldown"
    assert m.check("X", T0 + 15 * 60 * 10**9, 0.0, 1.0, 10.0, 1e4).rule is None


# ----------------------------------------------------------------------------- stats, fills, config

def test_stats_count_rejections_and_clips_by_rule():
    m = rm(max_position_size=10.0, max_drawdown=0.5)
    m.check("X", T0, 0.0, 5.0, 10.0, 1e4)     # passed
    m.check("X", T0, 0.0, 50.0, 10.0, 1e4)    # clipped
    m.check("X", T0, 10.0, 5.0, 10.0, 1e4)    # rejected
    m.check("X", T0, 0.0, 5.0, NAN, 1e4)      # rejected
    m.check("X", T0, 0.0, 5.0, 10.0, 1e3)     # trips the drawdown
    m.check("X", T0, 5.0, -5.0, 10.0, 1e3)    # exit: passed
    s = m.stats()
    assert (s.checks, s.passed, s.clipped, s.rejected) == (6, 2, 1, 3)
    assert s.by_rule == {"max_position_size": 2, "invalid_price": 1, "max_drawdown": 1}
    assert s.as_dict()["by_rule"] == s.by_rule


def test_fills_track_positions_and_bad_fills_change_nothing():
    m = RiskManager()
    m.on_fill("X", 10.0, 5.0, T0)
    m.on_fill("X", -4.0, 6.0, T0 + 1)
    assert (m.position("X"), m.gross_exposure()) == (6.0, 36.0)
    for size, price in [(NAN, 5.0), (1.0, NAN), (1.0, 0.0), (INF, 5.0)]:
        with pytest.raises(OrderError, match="fill on X"):
            m.on_fill("X", size, price, T0 + 2, "stop_loss")
    assert (m.position("X"), m.gross_exposure()) == (6.0, 36.0)
    assert m.check("X", T0 + 2, 6.0, 1.0, 6.0, 1e4).rule is None  # no cooldown was started


def test_an_unpriced_position_blocks_new_gross_exposure():
    m = RiskManager()
    m.check("X", T0, 40.0, 0.0, NAN, 1e4)  # a position known only from the caller, never priced
    assert m.gross_exposure(exclude="Y") == INF
    assert m.check("Y", T0, 0.0, 1.0, 10.0, 1e4).rule == "gross_exposure"


@pytest.mark.parametrize(("field", "value"), [
    ("max_position_size", 0.0), ("max_position_size", NAN), ("max_instrument_exposure", -1.0),
    ("max_gross_exposure", INF), ("max_daily_loss", 0.0), ("max_daily_loss", 1.5), ("max_drawdown", -0.1),
    ("max_drawdown", "10%"), ("cooldown_bars", -1), ("cooldown_bars", 2.5), ("cooldown_bars", True),
    ("cooldown", -5), ("cooldown", 1e30), ("cooldown", timedelta(seconds=-1)), ("lot_size", 0.0), ("stop_reasons", [1]),
])
def test_limits_errors_name_the_field(field, value):
    with pytest.raises(ConfigError, match=rf"RiskLimits\.{field} = "):
        RiskLimits(**{field: value})


def test_limits_conversions_and_settings(tmp_path):
    lim = RiskLimits(cooldown=90, stop_reasons="stop_loss", max_position_size=5)
    assert lim.cooldown == timedelta(seconds=90) and lim.stop_reasons == frozenset({"stop_loss"})
    assert type(lim.max_position_size) is float
    s = load_settings(env={"ALPHALOOP_HOME": str(tmp_path), "MAX_POSITION_SIZE": "250"})
    assert RiskLimits.from_settings(s, max_drawdown=0.2).max_position_size == 250.0
    with pytest.raises(ConfigError, match="unknown field"):
        RiskLimits.from_settings(s, drawdown=0.2)


def test_to_ns():
    assert to_ns(T0) == T0
    assert to_ns(datetime(2024, 3, 4)) == T0  # naive is UTC
    assert to_ns(pd.Timestamp("2024-03-04 00:00:00.000000007", tz="UTC")) == T0 + 7
    assert to_ns(datetime(2024, 3, 4, 1, tzinfo=UTC) - timedelta(hours=1)) == T0
    with pytest.raises(TypeError):
        to_ns(1.5)


# ----------------------------------------------------------------------------- property

def _valid(x: float) -> bool:
    return x > 0 and math.isfinite(x)


def mostly(valid: st.SearchStrategy[float], *bad: float) -> st.SearchStrategy[float]:
    """Usually valid, sometimes one of the bad values (a plain one_of would pick the bad ones, being
    simpler, so often that hardly any order got sized)."""
    return st.tuples(st.integers(0, 9), valid, st.sampled_from(bad)).map(lambda x: x[2] if x[0] == 9 else x[1])


steps = st.lists(st.tuples(
    st.sampled_from(["A", "B", "C"]),
    mostly(st.floats(-1.2, 1.2), NAN, INF, 0.0),                  # score
    mostly(st.floats(0.01, 1e4), NAN, INF, 0.0, -5.0),            # price
    mostly(st.floats(1e-4, 1e3), NAN, INF, 0.0, -1.0),            # atr
    mostly(st.floats(1e2, 1e7), NAN, INF, 0.0, -1e3),             # equity
    st.none() | st.floats(-1e4, 1e4),                             # an order not from sizing
    st.booleans(),                                                # its fill is a stop-out
    st.sampled_from([0, 1, 1, 1, 2, 5, 24]),                      # hours on
), min_size=1, max_size=30)
sizing_configs = st.builds(
    SizingConfig, risk_per_trade=st.floats(1e-3, 1.0), atr_multiple=st.floats(0.1, 5.0),
    max_position_size=st.floats(1.0, 1e5), max_instrument_exposure=st.floats(0.01, 5.0),
    max_gross_exposure=st.floats(0.01, 5.0), lot_size=st.sampled_from([0.001, 0.1, 1.0, 10.0]),
    min_score=st.floats(0.0, 0.5))
risk_limits = st.builds(
    RiskLimits, max_position_size=st.floats(1.0, 1e4), max_instrument_exposure=st.floats(0.01, 3.0),
    max_gross_exposure=st.floats(0.01, 3.0), lot_size=st.sampled_from([0.001, 0.1, 1.0, 10.0]),
    max_daily_loss=st.none() | st.floats(0.01, 1.0), max_drawdown=st.none() | st.floats(0.01, 1.0),
    cooldown_bars=st.integers(0, 3), cooldown=st.sampled_from([timedelta(0), timedelta(hours=2)]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps, cfg=sizing_configs, limits=risk_limits)
def test_sizing_then_risk_never_sends_an_order_over_a_limit(steps, cfg, limits):
    m = RiskManager(limits)
    positions: dict[str, float] = {}
    marks: dict[str, float] = {}  # last valid price per instrument, as the manager values them
    t = T0
    tol = 1e-8
    for inst, score, price, atr, equity, order, stop, hours in steps:
        t += hours * H
        m.on_equity(t, equity)
        if _valid(price):
            marks[inst] = price
        cur = positions.get(inst, 0.0)
        others = sum(abs(u) * marks[i] for i, u in positions.items() if i != inst and u)
        sized = size_order(score, price, atr, equity, cur, cfg, other_exposure=others)
        assert math.isfinite(sized.target) and math.isfinite(sized.delta)
        proposed = sized.delta if order is None else order
        v = m.check(inst, t, cur, proposed, price, equity)
        d = v.allowed_delta
        assert math.isfinite(d)
        assert d * proposed >= 0 and abs(d) <= abs(proposed) * (1 + 1e-12)  # never more, never reversed
        assert (v.rule is None) == (d == proposed)
        event(f"risk: {v.rule or ('passed' if d else 'nothing to send')}")
        new = cur + d
        if abs(new) > abs(cur) or new * cur < 0:  # the order adds exposure: every limit holds after it
            assert not m.halted
            assert abs(new) <= limits.max_position_size * (1 + tol)
            assert abs(new) * price <= limits.max_instrument_exposure * equity * (1 + tol)
            assert others + abs(new) * price <= limits.max_gross_exposure * equity * (1 + tol)
        if d:
            m.on_fill(inst, d, marks[inst], t, "stop_loss" if stop else "signal")
            positions[inst] = new


@settings(max_examples=100, deadline=None)
@given(cur=st.floats(), delta=st.floats(), price=st.floats(), equity=st.floats(),
       other=st.none() | st.floats(), limits=risk_limits)
def test_check_of_any_floats_never_sends_more_or_nan(cur, delta, price, equity, other, limits):
    v = RiskManager(limits).check("X", T0, cur, delta, price, equity, other_exposure=other)
    assert math.isfinite(v.allowed_delta)
    if v.allowed_delta:
        assert (v.allowed_delta > 0) == (delta > 0) and abs(v.allowed_delta) <= abs(delta)
