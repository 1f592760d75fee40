"""Position sizing: closed-form volatility-targeted sizes, caps, lot rounding, invalid inputs."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphaloop.core.config import load_settings
from alphaloop.core.errors import ConfigError
from alphaloop.strategy.sizing import SizingConfig, floor_lots, size_order

NAN, INF = math.nan, math.inf

# equity 100k, 1% risk, 2 ATR stop: 1000 / (2 * ATR) units at full conviction.
CFG = SizingConfig(risk_per_trade=0.01, atr_multiple=2.0, max_position_size=10_000.0,
                   max_instrument_exposure=10.0, max_gross_exposure=10.0, lot_size=1.0)


# ----------------------------------------------------------------------------- closed form

@pytest.mark.parametrize(("score", "atr", "expected"), [
    (1.0, 2.0, 250.0),     # 100000 * 0.01 * 1.0 / (2 * 2)
    (0.5, 2.0, 125.0),     # conviction halves the size
    (-0.5, 2.0, -125.0),   # the sign is the direction
    (0.8, 0.5, 800.0),     # 1000 * 0.8 / 1
    (-0.25, 5.0, -25.0),   # 1000 * 0.25 / 10
    (0.3, 3.0, 50.0),        # 1000 * 0.3 / 6
])
def test_volatility_target_closed_form(score, atr, expected):
    r = size_order(score, 10.0, atr, 100_000.0, 0.0, CFG)
    assert r.target == pytest.approx(expected, abs=1e-9)
    assert r.delta == r.target
    assert r.reason == "volatility_target"
    assert r.raw == pytest.approx(abs(expected))


def test_target_position_semantics_delta_is_target_minus_current():
    r = size_order(0.5, 10.0, 2.0, 100_000.0, 40.0, CFG)
    assert (r.target, r.delta) == (125.0, 85.0)
    r = size_order(-0.5, 10.0, 2.0, 100_000.0, 40.0, CFG)  # flip: close 40 and go 125 short
    assert (r.target, r.delta) == (-125.0, -165.0)
    r = size_order(0.5, 10.0, 2.0, 100_000.0, 125.0, CFG)  # already there: nothing to send
    assert (r.target, r.delta) == (125.0, 0.0)


def test_score_is_clamped_to_unit_interval():
    assert size_order(3.0, 10.0, 2.0, 100_000.0, 0.0, CFG).target == 250.0
    assert size_order(-7.0, 10.0, 2.0, 100_000.0, 0.0, CFG).target == -250.0


# ----------------------------------------------------------------------------- caps

def test_max_position_size_caps_units():
    cfg = SizingConfig(max_position_size=100.0, max_instrument_exposure=10.0, max_gross_exposure=10.0)
    r = size_order(1.0, 10.0, 2.0, 100_000.0, 0.0, cfg)  # raw 250
    assert (r.target, r.reason, r.raw) == (100.0, "max_position_size", 250.0)
    r = size_order(-1.0, 10.0, 2.0, 100_000.0, 0.0, cfg)
    assert (r.target, r.reason) == (-100.0, "max_position_size")


def test_size_equal_to_a_cap_is_not_capped():
    cfg = SizingConfig(max_position_size=250.0, max_instrument_exposure=10.0, max_gross_exposure=10.0)
    assert size_order(1.0, 10.0, 2.0, 100_000.0, 0.0, cfg).reason == "volatility_target"


def test_instrument_exposure_caps_notional():
    # 0.5 x 100k at price 400 is 125 units; raw is 250.
    cfg = SizingConfig(max_instrument_exposure=0.5, max_gross_exposure=10.0)
    r = size_order(1.0, 400.0, 2.0, 100_000.0, 0.0, cfg)
    assert (r.target, r.reason) == (125.0, "instrument_exposure")
    assert abs(r.target) * 400.0 <= 0.5 * 100_000.0


def test_gross_exposure_leaves_only_the_room_above_other_instruments():
    cfg = SizingConfig(max_instrument_exposure=1.0, max_gross_exposure=1.0)
    # 100k gross, 80k held elsewhere: 20k at price 100 = 200 units (instrument cap would be 1000).
    r = size_order(1.0, 100.0, 0.5, 100_000.0, 0.0, cfg, other_exposure=80_000.0)
    assert (r.target, r.reason) == (200.0, "gross_exposure")
    # no room at all: flat, and an existing position is reduced to it
    r = size_order(1.0, 100.0, 0.5, 100_000.0, 50.0, cfg, other_exposure=120_000.0)
    assert (r.target, r.delta, r.reason) == (0.0, -50.0, "gross_exposure")


def test_tightest_cap_is_named():
    cfg = SizingConfig(max_position_size=300.0, max_instrument_exposure=0.2, max_gross_exposure=0.5)
    # raw 1000; position cap 300; instrument 0.2*100k/100 = 200; gross (50k-40k)/100 = 100
    r = size_order(1.0, 100.0, 0.5, 100_000.0, 0.0, cfg, other_exposure=40_000.0)
    assert (r.target, r.reason) == (100.0, "gross_exposure")
    r = size_order(1.0, 100.0, 0.5, 100_000.0, 0.0, cfg, other_exposure=0.0)
    assert (r.target, r.reason) == (200.0, "instrument_exposure")


# ----------------------------------------------------------------------------- lots

def test_rounds_down_to_lot_size():
    cfg = SizingConfig(lot_size=10.0, max_instrument_exposure=10.0, max_gross_exposure=10.0)
    # 100000 * 0.01 * 0.3 / (2 * 1.3) = 115.38... -> 110
    r = size_order(0.3, 10.0, 1.3, 100_000.0, 0.0, cfg)
    assert r.target == 110.0 and r.raw == pytest.approx(115.3846153846)
    r = size_order(-0.3, 10.0, 1.3, 100_000.0, 0.0, cfg)
    assert r.target == -110.0  # towards zero for shorts too


def test_capped_size_is_rounded_down_too():
    cfg = SizingConfig(lot_size=100.0, max_instrument_exposure=0.5, max_gross_exposure=10.0)
    # instrument cap 0.5 * 100k / 333 = 150.15 units -> 100
    r = size_order(1.0, 333.0, 0.5, 100_000.0, 0.0, cfg)
    assert (r.target, r.reason) == (100.0, "instrument_exposure")


def test_below_one_lot_is_zero_with_a_reason():
    cfg = SizingConfig(lot_size=100.0)
    r = size_order(0.1, 10.0, 2.0, 100_000.0, 0.0, cfg)  # raw 25
    assert (r.target, r.delta, r.reason) == (0.0, 0.0, "below_lot_size")
    assert math.copysign(1.0, size_order(-0.1, 10.0, 2.0, 100_000.0, 0.0, cfg).target) == 1.0  # no -0.0


@pytest.mark.parametrize(("units", "lot", "expected"), [
    (0.3, 0.1, 0.3),      # 0.3 / 0.1 == 2.9999999999999996: still three lots
    (0.29, 0.1, 0.2),
    (0.7, 0.1, 0.7),
    (123.456, 0.01, 123.45),
    (99.999, 1.0, 99.0),
    (5.0, 10.0, 0.0),
    (0.0, 1.0, 0.0),
])
def test_floor_lots(units, lot, expected):
    assert floor_lots(units, lot) == pytest.approx(expected, abs=1e-12)
    assert floor_lots(units, lot) <= units * (1 + 1e-12)


def test_fractional_lots():
    cfg = SizingConfig(lot_size=0.001, risk_per_trade=0.02, max_instrument_exposure=10.0, max_gross_exposure=10.0)
    # 10000 * 0.02 * 0.7 / (2 * 1234.5) = 0.0567031...
    r = size_order(0.7, 30_000.0, 1234.5, 10_000.0, 0.0, cfg)
    assert r.target == pytest.approx(0.056)


# ----------------------------------------------------------------------------- no size from bad inputs

@pytest.mark.parametrize("atr", [NAN, 0.0, -1.0, INF, -INF])
def test_invalid_atr_sizes_nothing(atr):
    r = size_order(0.9, 10.0, atr, 100_000.0, 0.0, CFG)
    assert (r.target, r.delta, r.reason) == (0.0, 0.0, "invalid_atr")
    # with a position held, the order is still zero: a bad ATR never liquidates or grows it
    r = size_order(0.9, 10.0, atr, 100_000.0, 70.0, CFG)
    assert (r.target, r.delta, r.reason) == (70.0, 0.0, "invalid_atr")


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"price": NAN}, "invalid_price"),
    ({"price": 0.0}, "invalid_price"),
    ({"price": -3.0}, "invalid_price"),
    ({"price": INF}, "invalid_price"),
    ({"score": NAN}, "invalid_score"),
    ({"score": INF}, "invalid_score"),
    ({"equity": NAN}, "invalid_equity"),
    ({"equity": INF}, "invalid_equity"),
    ({"other_exposure": NAN}, "invalid_exposure"),
    ({"other_exposure": -1.0}, "invalid_exposure"),
])
def test_invalid_inputs_send_nothing(kwargs, reason):
    args = {"score": 0.9, "price": 10.0, "atr": 2.0, "equity": 100_000.0, "current_position": 30.0}
    args.update(kwargs)
    r = size_order(config=CFG, **args)
    assert (r.target, r.delta, r.reason) == (30.0, 0.0, reason)


def test_invalid_position_sends_nothing():
    r = size_order(0.9, 10.0, 2.0, 100_000.0, NAN, CFG)
    assert (r.target, r.delta, r.reason) == (0.0, 0.0, "invalid_position")


@pytest.mark.parametrize("equity", [0.0, -500.0])
def test_no_equity_targets_flat(equity):
    r = size_order(0.9, 10.0, 2.0, equity, 30.0, CFG)
    assert (r.target, r.delta, r.reason) == (0.0, -30.0, "no_equity")


def test_zero_score_threshold_and_no_short_target_flat():
    assert size_order(0.0, 10.0, 2.0, 100_000.0, 20.0, CFG)[:3] == (0.0, -20.0, "no_signal")
    cfg = SizingConfig(min_score=0.3)
    assert size_order(0.29, 10.0, 2.0, 100_000.0, 20.0, cfg)[:3] == (0.0, -20.0, "below_threshold")
    assert size_order(-0.3, 10.0, 2.0, 100_000.0, 0.0, cfg).target == -75.0  # at the threshold: trades
    cfg = SizingConfig(allow_short=False)
    assert size_order(-0.9, 10.0, 2.0, 100_000.0, 20.0, cfg)[:3] == (0.0, -20.0, "no_short")


# ----------------------------------------------------------------------------- config

@pytest.mark.parametrize(("field", "value"), [
    ("risk_per_trade", 0.0), ("risk_per_trade", 1.5), ("risk_per_trade", NAN), ("risk_per_trade", "1%"),
    ("atr_multiple", 0.0), ("atr_multiple", -2.0), ("atr_multiple", INF),
    ("max_position_size", 0.0), ("max_position_size", NAN),
    ("max_instrument_exposure", -0.1), ("max_gross_exposure", 0.0),
    ("lot_size", 0.0), ("lot_size", True),
    ("min_score", -0.1), ("min_score", 1.1),
    ("allow_short", "yes"),
])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ConfigError, match=rf"SizingConfig\.{field} = "):
        SizingConfig(**{field: value})


def test_config_stores_plain_floats():
    cfg = SizingConfig(max_position_size=500, lot_size=1)
    assert type(cfg.max_position_size) is float and type(cfg.lot_size) is float


def test_from_settings(tmp_path):
    s = load_settings(env={"ALPHALOOP_HOME": str(tmp_path), "MAX_POSITION_SIZE": "250",
                           "MIN_SIGNAL_THRESHOLD": "0.4"})
    cfg = SizingConfig.from_settings(s, lot_size=5.0)
    assert (cfg.max_position_size, cfg.min_score, cfg.lot_size) == (250.0, 0.4, 5.0)
    assert SizingConfig.from_settings(load_settings(env={"ALPHALOOP_HOME": str(tmp_path)})).max_position_size == 1000.0
    with pytest.raises(ConfigError, match="unknown field"):
        SizingConfig.from_settings(s, risk=0.1)


# ----------------------------------------------------------------------------- property

# Wide but not float-limit magnitudes (there products overflow and no cap is checkable), plus
# every kind of bad value.
any_float = st.one_of(st.floats(-1e9, 1e9), st.sampled_from([NAN, INF, -INF, 0.0, -0.0, 1e-300, 1e300]))
configs = st.builds(
    SizingConfig,
    risk_per_trade=st.floats(1e-4, 1.0),
    atr_multiple=st.floats(0.1, 10.0),
    max_position_size=st.floats(1e-3, 1e6),
    max_instrument_exposure=st.floats(1e-3, 5.0),
    max_gross_exposure=st.floats(1e-3, 5.0),
    lot_size=st.sampled_from([1e-3, 0.1, 1.0, 10.0, 100.0]),
    min_score=st.floats(0.0, 1.0),
    allow_short=st.booleans(),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(score=any_float, price=any_float, atr=any_float, equity=any_float, current=any_float,
       other=any_float, cfg=configs)
def test_never_nan_inf_or_over_a_cap(score, price, atr, equity, current, other, cfg):
    r = size_order(score, price, atr, equity, current, cfg, other_exposure=other)
    assert math.isfinite(r.target) and math.isfinite(r.delta) and math.isfinite(r.raw) and r.raw >= 0
    if r.delta == 0.0:
        return  # nothing is sent
    # a new target was sized: it is within every cap, on the lot grid, in the score's direction
    assert r.delta == r.target - current
    size = abs(r.target)
    if size == 0.0:
        return  # flat is within every cap (even with equity <= 0)
    assert size <= cfg.max_position_size * (1 + 1e-9)
    assert size * price <= cfg.max_instrument_exposure * equity * (1 + 1e-9)
    assert size * price <= max(0.0, cfg.max_gross_exposure * equity - other) * (1 + 1e-9) + 1e-9
    lots = size / cfg.lot_size
    assert abs(lots - round(lots)) <= 1e-6 * max(1.0, lots)
    assert (r.target > 0) == (score > 0)


@settings(max_examples=100, deadline=None)
@given(score=st.floats(), price=st.floats(), atr=st.floats(), equity=st.floats(), current=st.floats(),
       other=st.floats(), cfg=configs)
def test_any_floats_at_all_give_finite_results(score, price, atr, equity, current, other, cfg):
    r = size_order(score, price, atr, equity, current, cfg, other_exposure=other)
    assert math.isfinite(r.target) and math.isfinite(r.delta) and 0.0 <= r.raw < INF
