"""The finance backend's phrase rules, family by family, with negation, intensity and contrast.

The reference for exact values is VADER's own closed form: with no VADER word left in the text,
the score of one phrase rule of weight w is w / sqrt(w^2 + 15), negated it is -0.74 w, and so on.
"""

from __future__ import annotations

import math
import re

import pytest

from alphaloop.ml.sentiment import PhraseRule, VaderBackend, VaderFinanceBackend
from alphaloop.ml.sentiment import lexicon as lx


def squash(x: float) -> float:
    return x / math.sqrt(x * x + 15.0)


@pytest.fixture(scope="module")
def fin() -> VaderFinanceBackend:
    return VaderFinanceBackend()


@pytest.fixture(scope="module")
def vader() -> VaderBackend:
    return VaderBackend()


def rules_fired(fin: VaderFinanceBackend, text: str) -> set[str]:
    return {h.rule for h in fin.analyse(text).hits}


# ----------------------------------------------------------------------------- rule families

FAMILY_CASES = [
    # earnings
    ("Globex beats third-quarter profit estimates", "positive", "beats_expectations"),
    ("Initech tops Wall Street revenue forecasts", "positive", "beats_expectations"),
    ("Umbrella misses analysts' estimates for the quarter", "negative", "misses_expectations"),
    ("Hooli falls short of sales forecasts", "negative", "misses_expectations"),
    ("Soylent reports record revenue on strong demand", "positive", "record_results"),
    ("Vandelay posts record loss after writedowns", "negative", "record_losses"),
    ("Wonka issues profit warning", "negative", "profit_warning"),
    ("Stark Industries warns on full-year earnings", "negative", "profit_warning"),
    ("Cyberdyne swings to a loss in the second quarter", "negative", "swings_to_loss"),
    ("Tyrell returns to profit after two years", "positive", "swings_to_profit"),
    ("Acme reports better-than-expected quarterly sales", "positive", "better_than_expected"),
    # guidance
    ("Acme raises full-year guidance", "positive", "raises_guidance"),
    ("Acme lifts its 2025 sales outlook", "positive", "raises_guidance"),
    ("Acme cuts annual profit forecast", "negative", "cuts_guidance"),
    ("Acme withdraws its guidance", "negative", "cuts_guidance"),
    # analysts
    ("Jefferies upgrades Acme", "positive", "upgrade"),
    ("Acme downgraded by Moody's", "negative", "downgrade"),
    ("Barclays raises Acme price target to $80", "positive", "raises_price_target"),
    ("Citi cuts Acme to sell", "negative", "rating_to_sell"),
    # credit and distress
    ("Acme files for Chapter 11 bankruptcy protection", "negative", "files_for_bankruptcy"),
    ("Acme defaults on its bonds", "negative", "debt_default"),
    ("Auditor raises going-concern doubt at Acme", "negative", "going_concern"),
    # corporate actions
    ("Acme announces $5 billion share buyback", "positive", "dividend_hike"),
    ("Acme to repurchase up to 10% of its shares", "positive", "buyback"),
    ("Acme hikes quarterly dividend by 10%", "positive", "dividend_hike"),
    ("Acme cuts its dividend", "negative", "dividend_cut"),
    ("Acme suspends dividend to preserve cash", "negative", "dividend_cut"),
    ("Acme to lay off 5,000 workers", "negative", "layoffs"),
    ("Acme announces layoffs at its European plants", "negative", "layoffs"),
    ("Acme CEO resigns unexpectedly", "negative", "management_exit"),
    ("Acme wins $2 billion defense contract", "positive", "wins_deal"),
    ("Acme's merger talks with Globex collapse", "negative", "deal_collapse"),
    # legal and regulatory
    ("SEC probe into Acme's accounting widens", "negative", "regulatory_probe"),
    ("Acme faces DOJ investigation over pricing", "negative", "regulatory_probe"),
    ("FDA approves Acme's new drug", "positive", "regulatory_approval"),
    ("SEC closes investigation into Acme", "positive", "probe_closed"),
    # operations
    ("Acme recalls 500,000 cars over brake defect", "negative", "recall"),
    ("Trading in Acme shares halted", "negative", "halted"),
    ("Acme halts production at its Texas plant", "negative", "halted"),
    ("Ransomware attack hits Acme's systems", "negative", "cyber_and_outage"),
    # market moves, including the inverse ones plain VADER reads backwards
    ("Acme shares plunge 20%", "negative", "metric_down"),
    ("Acme revenue jumps 30%", "positive", "metric_up"),
    ("Unemployment falls to a two-year low", "positive", "inverse_metric_down"),
    ("Inflation rises faster than expected", "negative", "inverse_metric_up"),
    ("Acme narrows its quarterly loss", "positive", "reduces_inverse"),
    ("Bitcoin hits all-time high", "positive", "metric_up"),
    ("Yen weakens to 34-year low", "negative", "metric_down"),
    ("Acme stock is down 12% this week", "negative", "metric_lower"),
    # macro: the act of policy is neutral
    ("Central bank holds interest rates steady", "neutral", "rate_decision"),
]


@pytest.mark.parametrize(("text", "label", "rule"), FAMILY_CASES, ids=[c[2] + ":" + c[0][:30] for c in FAMILY_CASES])
def test_rule_family_examples(fin, text, label, rule):
    analysis = fin.analyse(text)
    assert rule in {h.rule for h in analysis.hits}, analysis
    assert analysis.sentiment.label == label, analysis


def test_every_family_is_exercised():
    families = {r.family for r in lx.PHRASE_RULES if r.weight != 0}
    by_name = {r.name: r.family for r in lx.PHRASE_RULES}
    covered = {by_name[rule] for _, _, rule in FAMILY_CASES}
    assert families - covered == set()


@pytest.mark.parametrize(("text", "label"), [
    ("Acme issues profit warning", "negative"),       # VADER: "profit" +1.9, "warning" -1.4
    ("Acme downgraded to sell", "negative"),          # VADER has no "downgrade"
    ("Unemployment falls sharply", "positive"),       # VADER: "unemployment" -1.9
    ("Acme files for Chapter 11", "negative"),        # no VADER word at all
    ("Acme beats expectations", "positive"),
    ("Fed holds interest rates steady", "neutral"),   # VADER: "interest" +2.0
])
def test_finance_rules_fix_what_plain_vader_gets_wrong(fin, vader, text, label):
    assert fin.score(text).label == label
    assert vader.score(text).label != label


# ----------------------------------------------------------------------------- negation

def test_negated_rule_is_scaled_by_vader_negation_constant(fin):
    # "Acme" and "did" are not VADER words: the only evidence is the negated rule
    w = next(r.weight for r in lx.PHRASE_RULES if r.name == "misses_expectations")
    s = fin.score("Acme did not miss estimates")
    assert s.label == "positive"
    assert s.score == pytest.approx(squash(lx.NEGATION_SCALAR * w), abs=1e-9)
    assert fin.score("Acme missed estimates").score == pytest.approx(squash(w), abs=1e-9)


@pytest.mark.parametrize(("text", "label"), [
    ("Acme did not miss estimates", "positive"),
    ("Acme didn't cut its guidance", "positive"),
    ("Acme fails to beat expectations", "negative"),
    ("Acme failed to beat forecasts", "negative"),
    ("Acme no longer expects growth this year", "negative"),
    ("Acme is no longer profitable", "negative"),
    ("Acme avoids bankruptcy", "positive"),
    ("Acme emerges from Chapter 11", "positive"),
    ("Ratings agency staves off downgrade of Acme", "positive"),
    ("No layoffs planned at Acme", "positive"),
    ("Acme rules out dividend cut", "positive"),
    ("Acme did not raise guidance", "negative"),
])
def test_negation(fin, text, label):
    assert fin.score(text).label == label, fin.analyse(text)


def test_negation_does_not_cross_a_clause(fin):
    # "not" belongs to the first clause; the layoffs in the second are real
    a = fin.analyse("Acme says it is not worried, but announces layoffs")
    hit = next(h for h in a.hits if h.rule == "layoffs")
    assert not hit.negated
    assert a.sentiment.label == "negative"


def test_negator_is_consumed_not_passed_on_to_vader(fin):
    # the "not" that negated the rule must not also flip "strong" for VADER
    a = fin.analyse("Acme does not cut guidance, sees strong demand")
    assert "not" not in a.vader_text.split()
    assert a.sentiment.label == "positive"


# ----------------------------------------------------------------------------- intensity

def test_intensifiers_scale_the_phrase(fin):
    plain = fin.score("Acme cuts guidance").score
    sharp = fin.score("Acme sharply cuts guidance").score
    slight = fin.score("Acme slightly cuts guidance").score
    assert sharp < plain < slight < 0
    w = next(r.weight for r in lx.PHRASE_RULES if r.name == "cuts_guidance")
    assert sharp == pytest.approx(squash(w * lx.INTENSIFIERS["sharply"]), abs=1e-9)
    assert slight == pytest.approx(squash(w * lx.INTENSIFIERS["slightly"]), abs=1e-9)


def test_percentage_scales_the_move(fin):
    big = fin.analyse("Acme revenue jumps 40%")
    small = fin.analyse("Acme revenue jumps 2%")
    assert big.hits[0].intensity == pytest.approx(1.40)
    assert small.hits[0].intensity == pytest.approx(1.02)
    capped = fin.analyse("Acme revenue jumps 300%")
    assert capped.hits[0].intensity == pytest.approx(1 + lx.PERCENT_CAP / 100)


def test_capitals_emphasise(fin):
    assert fin.score("Acme BEATS estimates").score > fin.score("Acme beats estimates").score


def test_but_shifts_weight_to_the_second_clause(fin):
    assert fin.score("Acme beats estimates but cuts guidance").label == "negative"
    assert fin.score("Acme cuts guidance but beats estimates").label == "positive"


def test_subordinate_clause_counts_less(fin):
    # the main clause is the news, the "as ..." clause its reason
    assert fin.score("Acme shares rise as sales decline less than feared").label == "positive"
    a = fin.analyse("Acme shares jump as costs rise")
    main, sub = (next(h for h in a.hits if h.rule == r) for r in ("metric_up", "inverse_metric_up"))
    assert sub.contribution == pytest.approx(sub.weight * lx.SUBORDINATE_WEIGHT)
    assert main.contribution == pytest.approx(main.weight)


# ----------------------------------------------------------------------------- the lexicon as data

def test_lexicon_tables_are_consistent():
    names = [r.name for r in lx.PHRASE_RULES]
    assert len(names) == len(set(names))
    for r in lx.PHRASE_RULES:
        re.compile(r.pattern, re.I)
        assert -4.0 <= r.weight <= 4.0
        assert "_W_" not in r.pattern and "_SW_" not in r.pattern and "_GAP_" not in r.pattern
    assert all(-4.0 <= v <= 4.0 for v in lx.WORD_VALENCES.values())
    assert not set(lx.WORD_VALENCES) & lx.NEUTRAL_WORDS


def test_rules_can_be_replaced_without_editing_the_lexicon():
    only = VaderFinanceBackend(rules=[PhraseRule("moon", "test", r"\bto\s+the\s+moon\b", 3.0)])
    a = only.analyse("Acme goes to the moon")
    assert [h.rule for h in a.hits] == ["moon"]
    assert a.sentiment.score == pytest.approx(squash(3.0), abs=1e-9)
    with pytest.raises(ValueError, match="bad pattern"):
        VaderFinanceBackend(rules=[PhraseRule("bad", "test", r"(", 1.0)])


def test_neutral_phrases_hide_vader_words(fin, vader):
    for text in ("Acme names new top executive", "Acme launches credit card", "Acme opens health care unit"):
        assert fin.score(text).label == "neutral", fin.analyse(text)
        assert vader.score(text).label == "positive"


def test_overlapping_rules_keep_the_longer_match(fin):
    # "falls short of forecasts" (earnings) wins over "revenue falls" (market move)
    assert rules_fired(fin, "Acme revenue falls short of forecasts") == {"misses_expectations"}
    # "files for Chapter 11" wins over the bare "Chapter 11"
    assert rules_fired(fin, "Acme files for Chapter 11") == {"files_for_bankruptcy"}


def test_analysis_explains_the_score(fin):
    a = fin.analyse("Acme beats estimates, raises guidance")
    assert [h.rule for h in a.hits] == ["beats_expectations", "raises_guidance"]
    assert a.raw == pytest.approx(sum(h.contribution for h in a.hits) + a.vader_raw)
    assert a.sentiment.score == pytest.approx(squash(a.raw))
    assert a.sentiment.source == "vader-finance"
