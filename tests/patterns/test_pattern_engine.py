"""The pattern engine: ``run`` == ``on_bar`` bar by bar, per-instrument state, bar order and
bad bars refused without touching state, DataFrame validation, detector specs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pattern_helpers import MARKET_FILES, bars, load_market

from alphaloop.core.errors import AlphaloopError
from alphaloop.core.market import Bar, Direction
from alphaloop.patterns import (
    BarOrderError,
    EmaCross,
    PatternEngine,
    PatternError,
    RsiExtremes,
    UnknownDetectorError,
    VolatilityBreakout,
    VwapDeviation,
)

CONFIGURED = [EmaCross(fast=5, slow=20), RsiExtremes(period=7, mode="momentum"),
              VwapDeviation(k=1.5, anchor="W", mode="breakout"),
              VolatilityBreakout(measure="atr", period=10, baseline=30)]


@pytest.mark.parametrize("file", MARKET_FILES)
@pytest.mark.parametrize("detectors", [None, CONFIGURED], ids=["defaults", "configured"])
def test_run_gives_exactly_the_signals_of_on_bar(file: str, detectors) -> None:
    df = load_market(file)
    ran = PatternEngine(detectors).run(df, "X")
    engine = PatternEngine(detectors)
    fed = [s for bar in bars(df, "X") for s in engine.on_bar(bar)]
    assert ran == fed
    assert len(ran) > 50
    assert {s.pattern for s in ran} >= {"ema_cross", "rsi_extremes", "volatility_breakout"}


@pytest.mark.parametrize("file", MARKET_FILES)
def test_signals_describe_their_bar(file: str) -> None:
    df = load_market(file)
    for s in PatternEngine().run(df, "X"):
        assert s.instrument == "X"
        assert s.time == df.index[s.bar]
        assert isinstance(s.direction, Direction)
        assert 0.0 <= s.strength <= 1.0
        assert s.features and all(isinstance(v, float) and math.isfinite(v) for v in s.features.values())


def test_vwap_deviation_fires_on_intraday_data() -> None:
    signals = PatternEngine(["vwap_deviation"]).run(load_market("EURUSD_1h.csv"), "EURUSD")
    assert len(signals) > 100
    assert {s.direction for s in signals} == {Direction.LONG, Direction.SHORT}


def test_instruments_keep_separate_state() -> None:
    goog, btc = load_market("GOOG_daily.csv"), load_market("BTC-USD_daily.csv")
    interleaved = sorted(bars(goog, "GOOG") + bars(btc, "BTC"), key=lambda b: (b.time, b.instrument))
    engine = PatternEngine()
    together = [s for bar in interleaved for s in engine.on_bar(bar)]
    assert sorted(engine.instruments) == ["BTC", "GOOG"]
    assert [s for s in together if s.instrument == "GOOG"] == PatternEngine().run(goog, "GOOG")
    assert [s for s in together if s.instrument == "BTC"] == PatternEngine().run(btc, "BTC")


def test_run_continues_the_instrument_state() -> None:
    df = load_market("EURUSD_1h.csv")
    whole = PatternEngine().run(df, "EURUSD")
    engine = PatternEngine()
    first = engine.run(df.iloc[:1234], "EURUSD")
    rest = [s for bar in bars(df.iloc[1234:2000], "EURUSD") for s in engine.on_bar(bar)]
    last = engine.run(df.iloc[2000:], "EURUSD")
    assert first + rest + last == whole


def test_a_bar_not_after_the_last_is_refused_and_changes_nothing() -> None:
    df = load_market("EURUSD_1h.csv").iloc[:600]
    stream = bars(df, "EURUSD")
    engine, twin = PatternEngine(), PatternEngine()
    for bar in stream[:400]:
        engine.on_bar(bar)
        twin.on_bar(bar)
    for stale in (stream[398], stream[399]):
        with pytest.raises(BarOrderError, match=r"EURUSD: bar at .* is not after the last bar"):
            engine.on_bar(stale)
    with pytest.raises(BarOrderError):
        engine.run(df.iloc[399:450], "EURUSD")
    assert [engine.on_bar(b) for b in stream[400:]] == [twin.on_bar(b) for b in stream[400:]]
    # other instruments are not affected by EURUSD's clock
    assert engine.on_bar(Bar("GBPUSD", df.index[0], 1.2, 1.3, 1.1, 1.25, 10.0)) == []


@pytest.mark.parametrize(("field", "value", "message"), [
    ("close", math.nan, "close=nan"), ("high", math.inf, "high=inf"),
    ("volume", -1.0, "negative volume"), ("open", "1.0", "open='1.0'"),
])
def test_a_bad_bar_is_refused_and_changes_nothing(field: str, value, message: str) -> None:
    stream = bars(load_market("GOOG_daily.csv").iloc[:300], "GOOG")
    engine, twin = PatternEngine(), PatternEngine()
    for bar in stream[:200]:
        engine.on_bar(bar)
        twin.on_bar(bar)
    good = stream[200]
    bad = Bar(**{**{f: getattr(good, f) for f in good.__slots__}, field: value})
    with pytest.raises(PatternError, match=message):
        engine.on_bar(bad)
    assert [engine.on_bar(b) for b in stream[200:]] == [twin.on_bar(b) for b in stream[200:]]


def test_run_validates_the_frame_before_touching_state() -> None:
    df = load_market("GOOG_daily.csv").iloc[:300]
    engine = PatternEngine()
    with pytest.raises(PatternError, match=r"missing column\(s\) \['volume'\]"):
        engine.run(df.drop(columns="volume"), "GOOG")
    with pytest.raises(PatternError, match="must be a DatetimeIndex"):
        engine.run(df.reset_index(drop=True), "GOOG")
    with pytest.raises(BarOrderError, match=r"row 5 .* is not after row 4"):
        engine.run(df.iloc[[0, 1, 2, 3, 4, 4, 5]], "GOOG")
    with pytest.raises(BarOrderError, match="row 2"):
        engine.run(df.iloc[[0, 2, 1]], "GOOG")
    broken = df.copy()
    broken.iloc[150, 3] = np.nan
    with pytest.raises(PatternError, match="column 'close' has nan at row 150"):
        engine.run(broken, "GOOG")
    negative = df.copy()
    negative.iloc[7, 4] = -3.0
    with pytest.raises(PatternError, match="column 'volume' is negative"):
        engine.run(negative, "GOOG")
    with pytest.raises(PatternError, match="expects a DataFrame"):
        engine.run(df["close"], "GOOG")
    assert engine.instruments == []
    assert engine.run(df, "GOOG") == PatternEngine().run(df, "GOOG")


def test_a_naive_index_is_read_as_utc_and_other_zones_are_converted() -> None:
    df = load_market("EURUSD_1h.csv").iloc[:800]
    expected = PatternEngine().run(df, "EURUSD")
    naive = df.tz_convert(None)
    assert PatternEngine().run(naive, "EURUSD") == expected
    tokyo = df.tz_convert("Asia/Tokyo")
    assert PatternEngine().run(tokyo, "EURUSD") == expected


def test_reset_forgets_state() -> None:
    df = load_market("GOOG_daily.csv")
    engine = PatternEngine()
    first = engine.run(df, "GOOG")
    engine.reset("GOOG")
    assert engine.run(df, "GOOG") == first
    engine.reset()
    assert engine.instruments == []


def test_detector_specs() -> None:
    engine = PatternEngine(["ema_cross", ("rsi_extremes", {"period": 9}), VwapDeviation(k=3.0)])
    assert [d.name for d in engine.detectors] == ["ema_cross", "rsi_extremes", "vwap_deviation"]
    assert engine.detectors[1].config["period"] == 9
    assert [d.name for d in PatternEngine().detectors] == [
        "ema_cross", "vwap_deviation", "volatility_breakout", "rsi_extremes"]
    assert [d.name for d in PatternEngine("rsi_extremes").detectors] == ["rsi_extremes"]
    with pytest.raises(UnknownDetectorError, match="unknown detector 'head_and_shoulders'; known "
                                                   "detectors: ema_cross, rsi_extremes"):
        PatternEngine(["head_and_shoulders"])
    with pytest.raises(PatternError, match="parameter 'period' must be an integer >= 2, got 0"):
        PatternEngine([("rsi_extremes", {"period": 0})])
    with pytest.raises(PatternError, match="a detector spec is"):
        PatternEngine([42])
    assert issubclass(PatternError, AlphaloopError) and PatternError.exit_code == 5


def test_engine_clones_its_prototypes_per_instrument() -> None:
    proto = EmaCross(fast=3, slow=8)
    df = load_market("GOOG_daily.csv")
    engine = PatternEngine([proto])
    engine.run(df, "A")
    assert engine.run(df, "B") == [
        s.__class__(**{**{f: getattr(s, f) for f in s.__slots__}, "instrument": "B"})
        for s in PatternEngine([proto]).run(df, "A")]
