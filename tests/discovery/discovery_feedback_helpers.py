"""Feedback records whose score is a known function of the spec and the regime (a planted relationship)."""

from __future__ import annotations

import math

import numpy as np

from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.discovery.feedback import FeedbackRecord
from alphaloop.discovery.regime import REGIME_FEATURES

DAY_NS = 86_400 * 10**9


def planted_score(spec: StrategySpec, regime: dict[str, float]) -> float:
    """sma_cross pays in trends when ``fast`` is near 12; ``band`` pays in calm, trendless markets."""
    trend, vol = regime["trend_strength"], regime["volatility"]
    if spec.name == "sma_cross":
        s = 0.8 * trend * math.exp(-(((spec.params["fast"] - 12) / 8) ** 2))
    else:
        s = 0.6 * (1 - trend) * (1 - vol / 0.04) * (1.0 if spec.params["mode"] == "revert" else 0.5)
    return float(min(max(s, 0.0), 1.0))


def random_regime(rng: np.random.Generator) -> dict[str, float]:
    regime = {k: 0.0 for k in REGIME_FEATURES}
    regime.update(trend_strength=float(rng.uniform(0, 1)), volatility=float(rng.uniform(0.005, 0.03)),
                  drift=float(rng.normal(0, 0.001)), efficiency_ratio=float(rng.uniform(0, 0.5)),
                  autocorrelation=float(rng.uniform(-0.2, 0.2)), range_rel=float(rng.uniform(0.005, 0.04)),
                  n_bars=500.0)
    return regime


def random_spec(rng: np.random.Generator, k: int) -> StrategySpec:
    if k % 2:
        fast = int(rng.integers(2, 30))
        return StrategySpec("sma_cross", {"fast": fast, "slow": fast + int(rng.integers(5, 60))})
    return StrategySpec("band", {"width": float(rng.uniform(1, 3)), "mode": str(rng.choice(["revert", "break"]))})


def planted_records(n: int, seed: int = 0, prefix: str = "rec") -> list[FeedbackRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        spec, regime = random_spec(rng, k), random_regime(rng)
        out.append(FeedbackRecord(
            id=f"{prefix}-{seed}-{k}", spec=spec, instrument="SYNTH", start_ns=k * DAY_NS,
            end_ns=(k + 500) * DAY_NS, n_bars=500, regime=regime,
            metrics={"sharpe": float(rng.normal()), "n_trades": float(rng.integers(0, 40))},
            backtest_score=planted_score(spec, regime)))
    return out
