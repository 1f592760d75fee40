"""The engine: input checks, the size cap, the LRU cache, and per-instrument aggregation with decay
checked against its closed form."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaloop.core.predictions import Sentiment
from alphaloop.ml.errors import InferenceError
from alphaloop.ml.sentiment import (
    DEFAULT_MAX_CHARS,
    SentimentEngine,
    SentimentInputError,
    VaderBackend,
    VaderFinanceBackend,
)


class StubBackend:
    """Readings chosen by the test: text "s=0.5,c=0.8" scores 0.5 with confidence 0.8."""

    name = "stub"
    neutral_band = 0.1

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def score_batch(self, texts: Sequence[str]) -> list[Sentiment]:
        self.calls.append(list(texts))
        out = []
        for t in texts:
            fields = dict(kv.split("=") for kv in t.split(",") if "=" in kv)
            s, c = float(fields.get("s", 0)), float(fields.get("c", 0.5))
            out.append(Sentiment(s, c, "positive" if s > 0 else "negative" if s < 0 else "neutral", self.name))
        return out


T0 = pd.Timestamp("2024-03-01 09:00", tz="UTC")
H = pd.Timedelta(hours=1)


@pytest.fixture
def stub() -> StubBackend:
    return StubBackend()


@pytest.fixture
def engine(stub) -> SentimentEngine:
    return SentimentEngine(stub, half_life="2h")


@pytest.fixture(scope="module")
def default_engine() -> SentimentEngine:
    return SentimentEngine()


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("bad", [None, 42, 3.5, b"bytes", ["a list"]])
def test_non_string_is_rejected(default_engine, bad):
    with pytest.raises(SentimentInputError, match="expected a string"):
        default_engine.score(bad)


@pytest.mark.parametrize("bad", ["", " ", "\n\t  \r\n"])
def test_blank_text_is_rejected(default_engine, bad):
    with pytest.raises(SentimentInputError, match="empty or whitespace-only"):
        default_engine.score(bad)


def test_input_error_is_an_inference_error_and_a_value_error():
    assert issubclass(SentimentInputError, InferenceError)
    assert issubclass(SentimentInputError, ValueError)


def test_a_bad_text_in_a_batch_names_its_index_and_scores_nothing(engine, stub):
    with pytest.raises(SentimentInputError, match=r"texts\[2\]"):
        engine.score_many(["s=0.1,c=1", "s=0.2,c=1", "   "])
    assert stub.calls == []
    assert engine.cache_stats.size == 0
    with pytest.raises(SentimentInputError, match="single string"):
        engine.score_many("one string is not a batch")


def test_backends_check_input_too():
    for backend in (VaderBackend(), VaderFinanceBackend()):
        with pytest.raises(SentimentInputError):
            backend.score("")
        with pytest.raises(SentimentInputError):
            backend.score(None)  # type: ignore[arg-type]


def test_huge_text_is_capped_and_says_so(default_engine):
    head = "Acme files for Chapter 11 bankruptcy. "
    text = head + "filler words " * 10_000
    assert len(text) > DEFAULT_MAX_CHARS
    ex = default_engine.explain(text)
    assert ex.truncated and ex.chars == len(text) and ex.scored_chars == DEFAULT_MAX_CHARS
    assert ex.sentiment.label == "negative"
    # scored exactly as its first max_chars characters
    assert default_engine.score(text) == default_engine.score(text[:DEFAULT_MAX_CHARS])
    short = default_engine.explain("Acme beats estimates")
    assert not short.truncated and short.scored_chars == short.chars


def test_max_chars_is_configurable(stub):
    eng = SentimentEngine(stub, max_chars=5)
    ex = eng.explain("s=0.5,c=1")
    assert ex.truncated and ex.scored_chars == 5
    assert stub.calls == [["s=0.5"]]
    with pytest.raises(ValueError, match="max_chars"):
        SentimentEngine(stub, max_chars=0)


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=1, max_size=300).filter(lambda s: s.strip()))
def test_any_text_gives_a_valid_reading(text):
    for backend in (_FIN, _VADER):
        s = backend.score(text)
        assert -1.0 <= s.score <= 1.0 and 0.0 <= s.confidence <= 1.0
        expected = ("positive" if s.score >= backend.neutral_band else
                    "negative" if s.score <= -backend.neutral_band else "neutral")
        assert s.label == expected


_FIN, _VADER = VaderFinanceBackend(), VaderBackend()


# ----------------------------------------------------------------------------- cache

def test_cache_hits_and_misses(engine, stub):
    a = engine.score("s=0.5,c=0.9")
    b = engine.score("s=0.5,c=0.9")
    assert a == b
    st_ = engine.cache_stats
    assert (st_.hits, st_.misses, st_.size) == (1, 1, 1)
    assert st_.hit_rate == pytest.approx(0.5)
    assert stub.calls == [["s=0.5,c=0.9"]]


def test_score_many_batches_misses_once_each(engine, stub):
    engine.score("s=0.1,c=1")
    out = engine.score_many(["s=0.1,c=1", "s=0.2,c=1", "s=0.2,c=1", "s=0.3,c=1"])
    assert [s.score for s in out] == [0.1, 0.2, 0.2, 0.3]
    assert stub.calls[-1] == ["s=0.2,c=1", "s=0.3,c=1"]  # one batch, repeats scored once
    assert engine.cache_stats.hits == 1


def test_cache_evicts_least_recently_used(stub):
    eng = SentimentEngine(stub, cache_size=2)
    eng.score("s=0.1,c=1")
    eng.score("s=0.2,c=1")
    eng.score("s=0.1,c=1")  # 0.1 is now the most recent
    eng.score("s=0.3,c=1")  # evicts 0.2
    assert eng.cache_stats.evictions == 1 and eng.cache_stats.size == 2
    n = len(stub.calls)
    eng.score("s=0.1,c=1")
    assert len(stub.calls) == n
    eng.score("s=0.2,c=1")
    assert len(stub.calls) == n + 1


def test_cache_can_be_off_and_cleared(stub):
    eng = SentimentEngine(stub, cache_size=0)
    eng.score("s=0.1,c=1")
    eng.score("s=0.1,c=1")
    assert len(stub.calls) == 2 and eng.cache_stats.size == 0
    eng2 = SentimentEngine(stub)
    eng2.score("s=0.1,c=1")
    eng2.clear_cache()
    assert eng2.cache_stats == type(eng2.cache_stats)(0, 0, 0, 0, eng2.cache_stats.maxsize)


def test_cache_key_holds_the_backend_name(stub):
    eng = SentimentEngine(stub)
    key = eng._key("s=0.1,c=1")
    assert key[0] == "stub" and len(key[1]) == 32  # sha256 digest
    other = StubBackend()
    other.name = "stub-v2"
    assert SentimentEngine(other)._key("s=0.1,c=1") != key


def test_explain_reports_cache_use_and_rules(default_engine):
    default_engine.clear_cache()
    first = default_engine.explain("Acme raises full-year guidance")
    second = default_engine.explain("Acme raises full-year guidance")
    assert (first.cached, second.cached) == (False, True)
    assert [h.rule for h in second.hits] == ["raises_guidance"]


def test_default_backend_is_the_finance_one(default_engine):
    assert isinstance(default_engine.backend, VaderFinanceBackend)
    assert default_engine.score("Acme beats estimates").source == "vader-finance"


# ----------------------------------------------------------------------------- aggregation

def test_two_readings_decay_against_the_closed_form(engine):
    engine.ingest("ACME", T0, "s=0.8,c=0.9")
    engine.ingest("ACME", T0 + H, "s=-0.4,c=0.6")
    at, hl = T0 + 3 * H, 2.0  # hours
    w1, w2 = 0.5 ** (3 / hl), 0.5 ** (2 / hl)
    expected = (w1 * 0.9 * 0.8 + w2 * 0.6 * -0.4) / (w1 * 0.9 + w2 * 0.6)
    conf = (w1 * 0.9 + w2 * 0.6) / (w1 + w2) * (1 - 0.5 ** (w1 + w2))
    got = engine.instrument_sentiment("ACME", at)
    assert got.score == pytest.approx(expected, rel=1e-12)
    assert got.confidence == pytest.approx(conf, rel=1e-12)
    assert got.label == ("positive" if expected >= 0.1 else "negative" if expected <= -0.1 else "neutral")
    assert got.source == "stub:decayed"


def test_half_life_can_be_given_per_call(engine):
    engine.ingest("ACME", T0, "s=1,c=1")
    engine.ingest("ACME", T0 + H, "s=-1,c=1")
    at = T0 + H
    w1 = 0.5 ** (1 / 0.5)  # half-life 30 minutes, first reading 1 hour old
    got = engine.instrument_sentiment("ACME", at, half_life=pd.Timedelta(minutes=30))
    assert got.score == pytest.approx((w1 - 1) / (w1 + 1), rel=1e-12)
    # a single reading at the query time: its own score, half of its confidence
    only = engine.instrument_sentiment("ACME", T0)
    assert only.score == pytest.approx(1.0) and only.confidence == pytest.approx(0.5)


def test_no_future_readings_are_used(engine):
    engine.ingest("ACME", T0, "s=0.5,c=1")
    engine.ingest("ACME", T0 + 2 * H, "s=-0.9,c=1")  # published after the query time
    at = T0 + H
    got = engine.instrument_sentiment("ACME", at)
    assert got.score == pytest.approx(0.5)
    w = 0.5 ** 0.5
    assert got.confidence == pytest.approx(1 - 0.5 ** w)
    before = engine.instrument_sentiment("ACME", T0 - H)
    assert (before.score, before.confidence, before.label) == (0.0, 0.0, "neutral")
    # a reading exactly at the query time is used
    assert engine.instrument_sentiment("ACME", T0 + 2 * H).score < 0


def test_at_none_is_the_latest_reading(engine):
    engine.ingest("ACME", T0, "s=0.5,c=1")
    engine.ingest("ACME", T0 + 4 * H, "s=0.1,c=1")
    assert engine.instrument_sentiment("ACME") == engine.instrument_sentiment("ACME", T0 + 4 * H)


def test_window_drops_old_readings(engine):
    engine.ingest("ACME", T0, "s=-1,c=1")
    engine.ingest("ACME", T0 + 5 * H, "s=0.5,c=1")
    got = engine.instrument_sentiment("ACME", T0 + 5 * H, window="3h")
    assert got.score == pytest.approx(0.5)


def test_order_of_ingestion_does_not_matter(stub):
    a, b = SentimentEngine(stub), SentimentEngine(stub)
    items = [(T0 + i * H, f"s={(-1) ** i * 0.1 * i:.2f},c=0.{i + 1}") for i in range(6)]
    for t, text in items:
        a.ingest("X", t, text)
    for t, text in reversed(items):
        b.ingest("X", t, text)
    assert a.instrument_sentiment("X", T0 + 7 * H) == b.instrument_sentiment("X", T0 + 7 * H)


def test_times_are_utc(engine):
    engine.ingest("ACME", pd.Timestamp("2024-03-01 10:00", tz="Europe/Paris"), "s=0.5,c=1")  # 09:00 UTC
    engine.ingest("ACME", "2024-03-01 09:00", "s=0.5,c=1")  # naive is UTC
    df = engine.readings("ACME")
    assert list(df.index) == [T0, T0]
    assert str(df.index.tz) == "UTC"


def test_unknown_instrument_is_neutral_with_no_confidence(engine):
    s = engine.instrument_sentiment("NOPE", T0)
    assert (s.score, s.confidence, s.label) == (0.0, 0.0, "neutral")


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"instrument": ""}, SentimentInputError, "instrument"),
    ({"instrument": None}, SentimentInputError, "instrument"),
    ({"time": "not a time"}, SentimentInputError, "time"),
    ({"time": None}, SentimentInputError, "time"),
    ({"time": pd.NaT}, SentimentInputError, "time"),
    ({"text": "  "}, SentimentInputError, "empty"),
])
def test_bad_ingest_changes_nothing(engine, stub, kwargs, error, match):
    args = {"instrument": "ACME", "time": T0, "text": "s=0.5,c=1"} | kwargs
    with pytest.raises(error, match=match):
        engine.ingest(args["instrument"], args["time"], args["text"])
    assert engine.instruments() == [] and stub.calls == []


@pytest.mark.parametrize("bad", [0, "-1h", "nonsense", pd.NaT])
def test_bad_half_life(stub, engine, bad):
    with pytest.raises(ValueError, match="half_life"):
        SentimentEngine(stub, half_life=bad)
    engine.ingest("ACME", T0, "s=0.5,c=1")
    with pytest.raises(ValueError, match="half_life"):
        engine.instrument_sentiment("ACME", T0, half_life=bad)


def test_add_reading_checks_ranges(engine):
    engine.add_reading("ACME", T0, Sentiment(0.3, 0.7, "positive", "elsewhere"))
    assert engine.instrument_sentiment("ACME").score == pytest.approx(0.3)
    with pytest.raises(SentimentInputError, match="out of range"):
        engine.add_reading("ACME", T0, Sentiment(1.5, 0.7, "positive", "elsewhere"))
    with pytest.raises(SentimentInputError, match="Sentiment"):
        engine.add_reading("ACME", T0, 0.3)  # type: ignore[arg-type]


def test_prune_drops_old_readings(engine):
    for i in range(5):
        engine.ingest("A", T0 + i * H, "s=0.1,c=1")
    engine.ingest("B", T0, "s=0.1,c=1")
    assert engine.prune(T0 + 2 * H) == 3
    assert engine.instruments() == ["A"]
    assert len(engine.readings("A")) == 3


def test_real_backend_end_to_end():
    eng = SentimentEngine(half_life="6h")
    eng.ingest("ACME", T0, "Acme files for Chapter 11 bankruptcy protection")
    eng.ingest("ACME", T0 + 12 * H, "Acme beats estimates and raises full-year guidance")
    now = eng.instrument_sentiment("ACME", T0 + 12 * H)
    early = eng.instrument_sentiment("ACME", T0 + 6 * H)
    assert early.label == "negative" and now.label == "positive"
    assert math.isclose(early.score, eng.score("Acme files for Chapter 11 bankruptcy protection").score)
