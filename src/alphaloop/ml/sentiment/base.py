"""What every sentiment backend shares: input checks, the size cap, labels and confidence.

Labels. A backend turns its ``score`` in [-1, 1] into a label with a *neutral band*: ``|score| <
neutral_band`` is "neutral", above it "positive", below minus it "negative". The band is a
backend attribute because each backend's score has its own scale (plain VADER's documented band
is 0.05; the finance backend uses a wider one; a classifier labels by its most likely class).

Size cap. Text longer than ``max_chars`` (10,000 by default) is cut to its first ``max_chars``
characters, never rejected: a headline or a post never comes near it, and a scraped article is
still scored on its opening, which carries the news. :meth:`SentimentEngine.explain` says when a
text was cut.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from alphaloop.core.predictions import Sentiment
from alphaloop.ml.errors import InferenceError

POSITIVE, NEUTRAL, NEGATIVE = "positive", "neutral", "negative"
LABELS = (NEGATIVE, NEUTRAL, POSITIVE)
DEFAULT_MAX_CHARS = 10_000


class SentimentInputError(InferenceError, ValueError):
    """The text offered cannot be scored: not a string, empty, or only whitespace.

    Also a ``ValueError`` so generic callers that catch bad values catch it."""


def check_text(text: object, *, where: str = "text") -> str:
    """``text`` itself when it is a non-blank string, else a :class:`SentimentInputError` naming it."""
    if not isinstance(text, str):
        raise SentimentInputError(f"{where}: expected a string, got {type(text).__name__}")
    if not text.strip():
        raise SentimentInputError(f"{where}: empty or whitespace-only text cannot be scored")
    return text


def cap_text(text: str, max_chars: int) -> tuple[str, bool]:
    """The text cut to ``max_chars`` characters, and whether it was cut."""
    if len(text) <= max_chars:
        return text, False
    return text[:max_chars], True


def check_max_chars(max_chars: object) -> int:
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
        raise ValueError(f"max_chars must be a positive integer, got {max_chars!r}")
    return max_chars


def label_for(score: float, neutral_band: float) -> str:
    """The label of ``score`` given the neutral band (``|score| < band`` is neutral)."""
    if score >= neutral_band:
        return POSITIVE
    if score <= -neutral_band:
        return NEGATIVE
    return NEUTRAL


def band_confidence(score: float, neutral_band: float, conflict: float = 0.0) -> float:
    """Confidence of a lexicon score: how far it sits inside its label's region, lowered by conflict.

    Polar labels run from 0.5 at the band's edge to 1.0 at |score| = 1. Neutral runs from 0.4 at
    the edge to 0.8 at 0: "no evidence found" is weaker than evidence, since a lexicon can miss
    words. ``conflict`` in [0, 1] (the smaller of positive and negative evidence over the larger)
    scales confidence down by up to half: a headline with news both ways is less certain.
    """
    s = abs(score)
    if s >= neutral_band:
        base = 0.5 + 0.5 * (s - neutral_band) / max(1.0 - neutral_band, 1e-12)
    else:
        base = 0.4 + 0.4 * (1.0 - s / neutral_band) if neutral_band > 0 else 0.8
    conflict = min(max(conflict, 0.0), 1.0)
    return float(min(max(base * (1.0 - 0.5 * conflict), 0.0), 1.0))


@runtime_checkable
class SentimentBackend(Protocol):
    """What :class:`SentimentEngine` needs from a backend: a ``name`` (the ``source`` of its
    readings and part of the cache key), a ``neutral_band`` and batch scoring of clean texts."""

    name: str
    neutral_band: float

    def score_batch(self, texts: Sequence[str]) -> list[Sentiment]: ...


class BaseBackend(abc.ABC):
    """Backends subclass this for ``score``/``score_batch`` with the input checks done once here."""

    name: str = "backend"
    neutral_band: float = 0.05
    max_chars: int = DEFAULT_MAX_CHARS

    def score(self, text: str) -> Sentiment:
        """Score one text (checked and capped at ``max_chars``)."""
        return self.score_batch([text])[0]

    def score_batch(self, texts: Sequence[str]) -> list[Sentiment]:
        """Score many texts; every text is checked before any is scored."""
        if isinstance(texts, str):
            raise SentimentInputError("texts: expected a sequence of strings, got a single string")
        clean = [cap_text(check_text(t, where=f"texts[{i}]"), self.max_chars)[0] for i, t in enumerate(texts)]
        return self._score_clean(clean) if clean else []

    @abc.abstractmethod
    def _score_clean(self, texts: list[str]) -> list[Sentiment]:
        """Score texts already checked and capped."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
