"""Lexicon backends: plain VADER, and VADER with the finance lexicon and phrase rules (the default).

How the finance backend scores a text:

1. Normalise quotes and dashes; rewrite multi-word negators to "not" (``lexicon.REWRITES``).
2. Find phrase rules (``lexicon.PHRASE_RULES``); keep non-overlapping matches (priority, then
   length, then list order). Each kept match contributes ``weight x intensity``, times -0.74 when a
   negator sits among the three words before it in its clause, times 0.5/1.5 when it comes
   before/after a "but".
   A match inside a subordinate clause ("... as costs rise", "... after a downgrade": the reason,
   not the news) counts 0.6.
3. Blank out the matched spans (and the negators they used) and let VADER, with the finance
   words merged into its lexicon, score what is left (main and subordinate clause apart, the
   latter at 0.6). Its compound is turned back into VADER's raw valence sum (the inverse of
   VADER's ``x / sqrt(x^2 + 15)``).
4. Add the two and squash with the same ``x / sqrt(x^2 + 15)``: the score in [-1, 1].

Labels use a neutral band of 0.25: |score| < 0.25 is neutral. That is the score of a raw valence
of 1 (one mild word such as "lifts"); any phrase rule (weight 1.5 or more) clears it on its own.
Confidence is :func:`alphaloop.ml.sentiment.base.band_confidence`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from alphaloop.core.predictions import Sentiment
from alphaloop.ml.errors import ModelLoadError
from alphaloop.ml.sentiment import lexicon as lx
from alphaloop.ml.sentiment.base import (
    DEFAULT_MAX_CHARS,
    BaseBackend,
    band_confidence,
    cap_text,
    check_max_chars,
    check_text,
    label_for,
)

VADER_ALPHA = 15.0  # VADER's normalisation constant
VADER_NEUTRAL_BAND = 0.05  # VADER's documented threshold for its compound score
FINANCE_NEUTRAL_BAND = 0.25

_MASK = " | "  # what a consumed span becomes: a token VADER counts as neutral and never negates through
_TOKEN = re.compile(r"(?:[\w$%'.&-]|,(?=\d))*[\w$%]|[,;:!?()\"]")  # "11,000" is one token
_PUNCT = frozenset(',;:!?()"')
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*(?:%|percent\b|per\s+cent\b)", re.I)
_NORMALISE = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": " - ",
                            "\u2014": " - ", "\u00a0": " "})


def _new_analyzer():
    """A fresh VADER analyser (its lexicon ships with the package; nothing is downloaded)."""
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError as e:  # pragma: no cover - the dependency is part of the install
        raise ModelLoadError("the VADER backends need the 'vaderSentiment' package: pip install vaderSentiment") from e
    return SentimentIntensityAnalyzer()


def squash(raw: float) -> float:
    """VADER's normalisation: a valence sum to (-1, 1)."""
    return raw / math.sqrt(raw * raw + VADER_ALPHA)


def unsquash(compound: float) -> float:
    """Inverse of :func:`squash` (VADER's compound is rounded to 4 decimals, so it is clipped first)."""
    c = min(max(compound, -0.9999), 0.9999)
    return c * math.sqrt(VADER_ALPHA / (1.0 - c * c))


class VaderBackend(BaseBackend):
    """Plain VADER: the compound score, labelled with VADER's documented band of +-0.05 by default."""

    name = "vader"

    def __init__(self, *, neutral_band: float = VADER_NEUTRAL_BAND, max_chars: int = DEFAULT_MAX_CHARS,
                 name: str | None = None):
        self.name = name or type(self).name
        self.neutral_band = _check_band(neutral_band)
        self.max_chars = check_max_chars(max_chars)
        self._analyzer = _new_analyzer()

    def _score_clean(self, texts: list[str]) -> list[Sentiment]:
        out = []
        for text in texts:
            p = self._analyzer.polarity_scores(text)
            c = float(p["compound"])
            hi = max(p["pos"], p["neg"])
            conflict = min(p["pos"], p["neg"]) / hi if hi > 0 else 0.0
            out.append(Sentiment(c, band_confidence(c, self.neutral_band, conflict),
                                 label_for(c, self.neutral_band), self.name))
        return out


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One phrase rule that fired: what it matched and what it added to the raw valence."""

    rule: str
    family: str
    matched: str
    weight: float
    intensity: float
    negated: bool
    contribution: float


@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything behind one finance score: the rules that fired, what VADER said about the rest
    (``vader_text``, ``vader_raw``), and the result."""

    sentiment: Sentiment
    text: str
    vader_text: str
    vader_raw: float
    hits: tuple[RuleHit, ...]

    @property
    def raw(self) -> float:
        return self.vader_raw + sum(h.contribution for h in self.hits)


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: lx.PhraseRule
    regex: re.Pattern[str]
    order: int


class VaderFinanceBackend(BaseBackend):
    """VADER plus the finance lexicon and phrase rules of :mod:`alphaloop.ml.sentiment.lexicon`.

    Every table can be replaced (``rules``, ``word_valences``, ``neutral_words``, ``rewrites``) to
    test or extend the lexicon without editing it; ``vader_weight`` scales VADER's share. Give a
    changed backend its own ``name``: the name is the readings' source and the cache key.
    ``analyse(text)`` returns the score with the rules that fired."""

    name = "vader-finance"

    def __init__(self, *, neutral_band: float = FINANCE_NEUTRAL_BAND, max_chars: int = DEFAULT_MAX_CHARS,
                 rules: Iterable[lx.PhraseRule] = lx.PHRASE_RULES,
                 word_valences: Mapping[str, float] = lx.WORD_VALENCES,
                 neutral_words: Iterable[str] = lx.NEUTRAL_WORDS,
                 rewrites: Iterable[tuple[str, str]] = lx.REWRITES,
                 vader_weight: float = 1.0, name: str | None = None):
        self.name = name or type(self).name
        self.neutral_band = _check_band(neutral_band)
        self.max_chars = check_max_chars(max_chars)
        self.vader_weight = float(vader_weight)
        self._analyzer = _new_analyzer()
        for word in neutral_words:
            self._analyzer.lexicon.pop(word.lower(), None)
        self._analyzer.lexicon.update({w.lower(): float(v) for w, v in word_valences.items()})
        self._rewrites = [(re.compile(p, re.I), r) for p, r in rewrites]
        self._rules: list[_Compiled] = []
        for i, rule in enumerate(rules):
            try:
                self._rules.append(_Compiled(rule, re.compile(rule.pattern, re.I), i))
            except re.error as e:
                raise ValueError(f"phrase rule {rule.name!r}: bad pattern: {e}") from e

    # ------------------------------------------------------------------ scoring

    def _score_clean(self, texts: list[str]) -> list[Sentiment]:
        return [self._analyse(t).sentiment for t in texts]

    def analyse(self, text: str) -> Analysis:
        """Score one text and say why (checked and capped like :meth:`score`)."""
        return self._analyse(cap_text(check_text(text), self.max_chars)[0])

    def _analyse(self, text: str) -> Analysis:
        text = text.translate(_NORMALISE)
        for regex, repl in self._rewrites:
            text = regex.sub(repl, text)
        tokens = [(m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(text)]
        contrast_at = next((s for t, s, _ in tokens if t.lower() in lx.CONTRAST_WORDS), None)
        sub = _subordinate_span(tokens, len(text))
        all_caps = text.upper() == text

        hits: list[RuleHit] = []
        masked: list[tuple[int, int]] = []
        for c, m in self._matches(text):
            start, end = m.span()
            negator = self._negator(tokens, start)
            intensity = self._intensity(tokens, text, start, end, all_caps)
            contribution = c.rule.weight * intensity
            if negator is not None:
                contribution *= lx.NEGATION_SCALAR
                masked.append(negator)
            if contrast_at is not None:
                contribution *= lx.AFTER_CONTRAST if start > contrast_at else lx.BEFORE_CONTRAST
            if sub is not None and sub[0] <= start < sub[1]:
                contribution *= lx.SUBORDINATE_WEIGHT
            hits.append(RuleHit(c.rule.name, c.rule.family, m.group(0), c.rule.weight, intensity,
                                negator is not None, contribution))
            masked.append((start, end))

        # VADER reads the main clause and the subordinate one separately, the latter at its weight
        a, b = sub if sub is not None else (len(text), len(text))
        main_text = _blank(text[:a], masked, 0) + _MASK + _blank(text[b:], masked, b)
        sub_text = _blank(text[a:b], masked, a)
        vader_raw = self.vader_weight * (self._vader_raw(main_text)
                                         + lx.SUBORDINATE_WEIGHT * self._vader_raw(sub_text))
        vader_text = main_text if sub is None else f"{main_text} [{sub_text}]"
        raw = vader_raw + sum(h.contribution for h in hits)
        score = squash(raw)
        pos = max(vader_raw, 0.0) + sum(h.contribution for h in hits if h.contribution > 0)
        neg = -min(vader_raw, 0.0) - sum(h.contribution for h in hits if h.contribution < 0)
        conflict = min(pos, neg) / max(pos, neg) if max(pos, neg) > 0 else 0.0
        sentiment = Sentiment(score, band_confidence(score, self.neutral_band, conflict),
                              label_for(score, self.neutral_band), self.name)
        return Analysis(sentiment, text, vader_text, vader_raw, tuple(hits))

    def _vader_raw(self, text: str) -> float:
        if not any(ch.isalnum() for ch in text):
            return 0.0
        return unsquash(float(self._analyzer.polarity_scores(text)["compound"]))

    def _matches(self, text: str) -> list[tuple[_Compiled, re.Match[str]]]:
        """Non-overlapping rule matches: higher priority first, then longer, then earlier-listed."""
        found = [(c, m) for c in self._rules for m in c.regex.finditer(text) if m.end() > m.start()]
        found.sort(key=lambda cm: (-cm[0].rule.priority, -(cm[1].end() - cm[1].start()), cm[0].order,
                                   cm[1].start()))
        taken: list[tuple[int, int]] = []
        kept = []
        for c, m in found:
            s, e = m.span()
            if all(e <= ts or s >= te for ts, te in taken):
                taken.append((s, e))
                kept.append((c, m))
        kept.sort(key=lambda cm: cm[1].start())
        return kept

    @staticmethod
    def _clause_before(tokens: list[tuple[str, int, int]], start: int, n: int) -> list[tuple[str, int, int]]:
        """Up to ``n`` tokens right before ``start`` that are in the same clause, nearest first."""
        out = []
        for tok in reversed([t for t in tokens if t[2] <= start]):
            word = tok[0].lower()
            if word in _PUNCT or word in lx.CLAUSE_BREAKS:
                break
            out.append(tok)
            if len(out) == n:
                break
        return out

    def _negator(self, tokens: list[tuple[str, int, int]], start: int) -> tuple[int, int] | None:
        for word, s, e in self._clause_before(tokens, start, lx.NEGATION_WINDOW):
            lw = word.lower()
            if lw in lx.NEGATORS or lw.endswith("n't"):
                return s, e
        return None

    def _intensity(self, tokens: list[tuple[str, int, int]], text: str, start: int, end: int,
                   all_caps: bool) -> float:
        near = [t for t, _, _ in self._clause_before(tokens, start, lx.INTENSITY_WINDOW)]
        near += [t for t, s, e in tokens if s >= start and e <= end]
        after = [t for t in tokens if t[1] >= end][: lx.INTENSITY_WINDOW + 1]
        for tok, _, _ in after:
            if tok in _PUNCT or tok.lower() in lx.CLAUSE_BREAKS:
                break
            near.append(tok)
        factor = 1.0
        for tok in near:
            factor *= lx.INTENSIFIERS.get(tok.lower(), 1.0)
        # a percentage inside the phrase or just after it: "revenue jumps 40%", "cuts 10% of jobs"
        tail_end = after[-1][2] if after else end
        pct = _PERCENT.search(text, start, max(tail_end, end))
        if pct:
            factor *= 1.0 + min(float(pct.group(1)), lx.PERCENT_CAP) / 100.0
        if not all_caps and any(len(w) >= 4 and w.isalpha() and w.isupper() for w in text[start:end].split()):
            factor *= lx.CAPS_BOOST
        lo, hi = lx.INTENSITY_RANGE
        return min(max(factor, lo), hi)


def _subordinate_span(tokens: list[tuple[str, int, int]], n: int) -> tuple[int, int] | None:
    """Where the first subordinate clause runs: from its conjunction to the end, or, when the
    headline opens with it ("As oil falls, airlines rally"), to the first comma."""
    for i, (tok, start, _) in enumerate(tokens):
        if tok.lower() in lx.SUBORDINATORS:
            if i == 0:
                comma = next((s for t, s, _ in tokens if t == ","), None)
                return (0, comma) if comma is not None else None
            return start, n
    return None


def _blank(text: str, spans: list[tuple[int, int]], offset: int = 0) -> str:
    """``text`` (found at ``offset`` in the full text) with each span in it replaced by a separator."""
    out, pos = [], 0
    for s, e in sorted(spans):
        s, e = max(s - offset, pos), min(e - offset, len(text))
        if e <= s:
            continue
        out.append(text[pos:s])
        out.append(_MASK)
        pos = e
    out.append(text[pos:])
    return "".join(out)


def _check_band(band: float) -> float:
    band = float(band)
    if not 0.0 <= band < 1.0:
        raise ValueError(f"neutral_band must be in [0, 1), got {band}")
    return band
