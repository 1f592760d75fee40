"""Sentiment scoring speed: plain VADER against VADER + the finance lexicon, and the engine's cache.

Scores the labelled headlines of tests/fixtures/sentiment many times over and reports headlines
per second (best of a few runs), then the same through SentimentEngine with every text cached.

Run: .venv/bin/python benchmarks/bench_sentiment.py   (a few seconds)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from alphaloop.ml.sentiment import SentimentEngine, VaderBackend, VaderFinanceBackend, load_labelled

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "sentiment"
REPEAT = 5


def best_rate(fn: Callable[[list[str]], object], texts: list[str], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(texts)
        best = min(best, time.perf_counter() - t0)
    return len(texts) / best


def main() -> None:
    texts = [t for f in sorted(FIXTURES.glob("*.csv")) for t, _ in load_labelled(f)] * REPEAT
    plain, ours = VaderBackend(), VaderFinanceBackend()
    engine = SentimentEngine(ours)
    engine.score_many(texts)  # warm the cache
    rows = [
        ("plain VADER", best_rate(plain.score_batch, texts)),
        ("VADER + finance (ours)", best_rate(ours.score_batch, texts)),
        ("engine, all cached", best_rate(engine.score_many, texts)),
    ]
    print(f"{len(texts)} headlines per run")
    for name, rate in rows:
        print(f"{name:<24} {rate:>12,.0f} headlines/s")


if __name__ == "__main__":
    main()
