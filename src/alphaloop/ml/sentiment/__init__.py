"""The sentiment engine: text -> :class:`~alphaloop.core.predictions.Sentiment`, cached, and
aggregated per instrument with exponential decay.

Backends:

* :class:`VaderFinanceBackend` (default): VADER plus a finance lexicon and phrase rules
  ("beats estimates", "cuts guidance", "files for Chapter 11", ...), with negation and intensity.
  Fully offline. Neutral band: |score| < 0.25.
* :class:`VaderBackend`: plain VADER (neutral band 0.05), for comparison.
* :class:`OnnxTextBackend`: any ONNX text classifier (e.g. FinBERT) with its tokenizer.

Input rules: a non-string, empty or whitespace-only text raises :class:`SentimentInputError`
(an :class:`~alphaloop.ml.errors.InferenceError`); a text over ``max_chars`` (10,000 by default)
is scored on its first ``max_chars`` characters, and :meth:`SentimentEngine.explain` reports it.

    >>> from alphaloop.ml.sentiment import SentimentEngine
    >>> engine = SentimentEngine()
    >>> engine.score("Acme beats estimates and raises full-year guidance").label
    'positive'
"""

from __future__ import annotations

from alphaloop.ml.sentiment.base import (
    DEFAULT_MAX_CHARS,
    LABELS,
    NEGATIVE,
    NEUTRAL,
    POSITIVE,
    BaseBackend,
    SentimentBackend,
    SentimentInputError,
)
from alphaloop.ml.sentiment.engine import CacheStats, Explanation, SentimentEngine
from alphaloop.ml.sentiment.evaluation import Evaluation, compare, evaluate, load_labelled
from alphaloop.ml.sentiment.lexicon import PhraseRule
from alphaloop.ml.sentiment.onnx_backend import OnnxTextBackend
from alphaloop.ml.sentiment.tokenizer import WordPieceTokenizer, load_tokenizer
from alphaloop.ml.sentiment.vader import Analysis, RuleHit, VaderBackend, VaderFinanceBackend

__all__ = [
    "DEFAULT_MAX_CHARS",
    "LABELS",
    "NEGATIVE",
    "NEUTRAL",
    "POSITIVE",
    "Analysis",
    "BaseBackend",
    "CacheStats",
    "Evaluation",
    "Explanation",
    "OnnxTextBackend",
    "PhraseRule",
    "RuleHit",
    "SentimentBackend",
    "SentimentEngine",
    "SentimentInputError",
    "VaderBackend",
    "VaderFinanceBackend",
    "WordPieceTokenizer",
    "compare",
    "evaluate",
    "load_labelled",
    "load_tokenizer",
]
