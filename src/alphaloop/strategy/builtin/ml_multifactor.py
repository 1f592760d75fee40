"""``ml_multifactor``: the flagship strategy. Every pattern signal (and, optionally, every bar) becomes
one decision that fuses

* technical factors: SMA trend (fast-slow gap in ATRs), RSI momentum, ATR volatility (a damper:
  volatility above its recent average shrinks the score);
* the ML price forecast and its confidence (asked through ``ctx.services``);
* the instrument's sentiment (decayed news score);
* the pattern signal's direction and strength;

into a score in [-1, 1] with configurable weights. A missing source (no model, timeout, error, NaN,
no news, warm-up) has its weight spread over the others and is recorded as missing with the reason.
It trades only when |score| >= ``threshold``; the size comes from volatility targeting, capped by
position and exposure limits, then the risk manager may clip or refuse it (kill switch on daily loss
or drawdown, cooldown after a stop-out). Each decision is recorded with its factors, the model and
inference path, and the order it led to, or why none.
"""

from __future__ import annotations

import math
import time

import numpy as np

from alphaloop.core.decisions import Decision, Factor
from alphaloop.core.errors import StrategyError
from alphaloop.core.market import Signal
from alphaloop.core.orders import Fill
from alphaloop.indicators import atr, rsi, sma
from alphaloop.ml.features import make_features
from alphaloop.strategy.base import Context, Strategy
from alphaloop.strategy.registry import register_strategy
from alphaloop.strategy.risk import RiskLimits, RiskManager
from alphaloop.strategy.sizing import SizingConfig, size_order

FACTORS = ("trend", "momentum", "ml", "sentiment", "pattern")
# Aggregated sentiment carries a confidence that decays with the age of its headlines; below this
# the news is too stale to count and the factor is missing.
MIN_SENTIMENT_CONFIDENCE = 0.05


@register_strategy
class MlMultiFactor(Strategy):
    name = "ml_multifactor"
    params = {
        "fast": 10, "slow": 30, "rsi_n": 14, "atr_n": 14,
        "w_trend": 0.25, "w_momentum": 0.15, "w_ml": 0.3, "w_sentiment": 0.15, "w_pattern": 0.15,
        "threshold": 0.3,  # MIN_SIGNAL_THRESHOLD
        "detectors": "ema_cross,vwap_deviation,volatility_breakout,rsi_extremes",
        "on_bars": False,  # also decide on bars without a signal
        "risk_per_trade": 0.01, "atr_multiple": 2.0, "stop_atr": 3.0,
        "max_position_size": 1000.0,  # MAX_POSITION_SIZE
        "max_exposure": 1.0, "max_daily_loss": 0.05, "max_drawdown": 0.25, "cooldown_bars": 5,
        "lot_size": 1.0,
    }

    def validate(self) -> None:
        if not 0 < self.fast < self.slow:
            raise StrategyError(f"ml_multifactor needs 0 < fast < slow, got {self.fast}, {self.slow}")
        weights = [getattr(self, f"w_{f}") for f in FACTORS]
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise StrategyError("ml_multifactor weights must be >= 0 and not all 0")
        if not 0 <= self.threshold <= 1:
            raise StrategyError(f"threshold must be within [0, 1], got {self.threshold}")
        self.sizing = SizingConfig(risk_per_trade=self.risk_per_trade, atr_multiple=self.atr_multiple,
                                   max_position_size=self.max_position_size,
                                   max_instrument_exposure=self.max_exposure, max_gross_exposure=self.max_exposure,
                                   lot_size=self.lot_size)
        self.limits = RiskLimits(max_position_size=self.max_position_size, max_instrument_exposure=self.max_exposure,
                                 max_gross_exposure=self.max_exposure, max_daily_loss=self.max_daily_loss or None,
                                 max_drawdown=self.max_drawdown or None, cooldown_bars=self.cooldown_bars,
                                 lot_size=self.lot_size)

    def pattern_detectors(self) -> list[str]:
        return [d.strip() for d in self.detectors.split(",") if d.strip()]

    def init(self, ctx: Context) -> None:
        self.risk = RiskManager(self.limits)
        self.series = {}
        for inst in ctx.instruments:
            self.series[inst] = {
                "close": ctx.history("close", inst),
                "fast": ctx.indicator(sma, "close", self.fast, instrument=inst),
                "slow": ctx.indicator(sma, "close", self.slow, instrument=inst),
                "rsi": ctx.indicator(rsi, "close", self.rsi_n, instrument=inst),
                "atr": ctx.indicator(atr, "high", "low", "close", self.atr_n, instrument=inst),
            }
        self.n_decisions = 0
        self.last_bar: dict[str, int] = {}

    # ---- events ------------------------------------------------------------------------------
    def on_signal(self, ctx: Context, signal: Signal) -> None:
        if signal.instrument not in self.series:
            return  # not ours (the engine logs unknown instruments)
        self._decide(ctx, signal.instrument, signal)

    def on_bar(self, ctx: Context) -> None:
        self.risk.on_equity(ctx.time_ns, ctx.equity)
        if self.on_bars:
            for inst in ctx.instruments:
                if self.last_bar.get(inst) != len(self.series[inst]["close"]):
                    self._decide(ctx, inst, None)

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        self.risk.on_fill(fill.instrument, fill.size, fill.price, fill.time_ns, fill.reason)

    # ---- the decision ------------------------------------------------------------------------
    def _technical(self, s: dict) -> tuple[Factor, Factor, float, float, float]:
        close, f, sl, r, a = s["close"][-1], s["fast"][-1], s["slow"][-1], s["rsi"][-1], s["atr"][-1]
        w = self.parameters
        if math.isfinite(f) and math.isfinite(sl) and math.isfinite(a) and a > 0:
            trend = Factor("trend", math.tanh((f - sl) / a), w["w_trend"], 0.0,
                           detail={"sma_fast": f, "sma_slow": sl, "atr": a})
        else:
            trend = Factor("trend", 0.0, w["w_trend"], 0.0, True, "warm-up")
        if math.isfinite(r):
            momentum = Factor("momentum", (r - 50.0) / 50.0, w["w_momentum"], 0.0, detail={"rsi": r})
        else:
            momentum = Factor("momentum", 0.0, w["w_momentum"], 0.0, True, "warm-up")
        # volatility damper: ATR above its average over the slow window shrinks conviction
        atrs = s["atr"][-self.slow:]
        finite = [x for x in atrs if math.isfinite(x)]
        damp = 1.0
        if math.isfinite(a) and finite and len(finite) == len(atrs):
            ratio = a / (sum(finite) / len(finite))
            damp = min(1.0, max(0.5, 1.0 / ratio)) if ratio > 0 else 1.0
        return trend, momentum, damp, a, close

    def _decide(self, ctx: Context, inst: str, signal: Signal | None) -> None:
        started = time.perf_counter()
        s = self.series[inst]
        if not s["close"]:
            return  # this instrument has no bar yet (several instruments on one clock)
        self.last_bar[inst] = len(s["close"])
        trend, momentum, damp, a, price = self._technical(s)
        now = ctx.time_ns
        services = ctx.services
        calls = {}
        row = ctx.feature_row(make_features, inst)
        if services.predictor is not None and np.isfinite(row).all():
            calls["ml"] = lambda: services.predictor.predict(row.astype(np.float32), instrument=inst, bar_time=now,
                                                             timeout=services.timeout_s if services.concurrent else None)
        if services.sentiment is not None:
            calls["sentiment"] = lambda: services.sentiment.instrument_sentiment(inst, at=now)
        answers = services.gather(calls) if calls else {}
        w = self.parameters
        pred = answers.get("ml")
        if pred is not None and pred.ok:
            p = pred.value
            if getattr(services.predictor, "task", "regression") == "classification":
                direction = max(-1.0, min(1.0, 2 * p.value - 1))  # P(up) -> [-1, 1]
            else:
                direction = math.copysign(1.0, p.value) if p.value else 0.0
            ml = Factor("ml", direction * p.confidence, w["w_ml"], 0.0,
                        detail={"prediction": p.value, "confidence": p.confidence, "latency_ms": p.latency_ms})
        else:
            why = pred.error if pred is not None else ("no model" if services.predictor is None else "warm-up")
            ml = Factor("ml", 0.0, w["w_ml"], 0.0, True, why)
        sent = answers.get("sentiment")
        if sent is not None and sent.ok and sent.value.confidence >= MIN_SENTIMENT_CONFIDENCE:
            sentiment = Factor("sentiment", sent.value.score, w["w_sentiment"], 0.0,
                               detail={"confidence": sent.value.confidence, "label": sent.value.label})
        else:
            why = sent.error if sent is not None and not sent.ok else (
                "no source" if services.sentiment is None else "no recent news")
            sentiment = Factor("sentiment", 0.0, w["w_sentiment"], 0.0, True, why)
        if signal is not None:
            pattern = Factor("pattern", signal.direction.sign * signal.strength, w["w_pattern"], 0.0,
                             detail={"pattern": signal.pattern, "strength": signal.strength})
        else:
            pattern = Factor("pattern", 0.0, w["w_pattern"], 0.0, True, "no signal")
        factors = [trend, momentum, ml, sentiment, pattern]
        present = sum(f.weight for f in factors if not f.missing)
        factors = [Factor(f.name, f.value, f.weight, 0.0 if f.missing or present == 0 else f.weight / present,
                          f.missing, f.reason, f.detail) for f in factors]
        raw = sum(f.value * f.effective_weight for f in factors)
        score = max(-1.0, min(1.0, raw * damp))
        factors.append(Factor("volatility", damp, 0.0, 0.0, not math.isfinite(a), None if math.isfinite(a) else "warm-up",
                              detail={"atr": a, "damper": damp}))

        action, reason, target, size, rule, order_id = "hold", "", None, None, None, None
        current = ctx.position(inst) + sum((o.size or 0.0) - o.filled for o in ctx.orders
                                           if o.instrument == inst and o.parent_trade is None and o.size is not None)
        if abs(score) < self.threshold:
            reason = f"|score| {abs(score):.3f} below threshold {self.threshold}"
        else:
            equity = ctx.equity
            sized = size_order(score, price, a, equity, current, self.sizing,
                               other_exposure=self.risk.gross_exposure(exclude=inst))
            target = sized.target
            if not sized.delta:
                reason = f"no change of position ({sized.reason})"
            else:
                verdict = self.risk.check(inst, now, current, sized.delta, price, equity)
                rule = verdict.rule
                if not verdict.allowed_delta:
                    reason = f"refused by risk rule {verdict.rule}: {verdict.detail}"
                else:
                    size = verdict.allowed_delta
                    opening = (current + size) * size > 0  # the order leaves a position in its own direction
                    sl = None
                    if self.stop_atr > 0 and opening and math.isfinite(a) and a > 0:
                        sl = price - math.copysign(self.stop_atr * a, size)
                        if sl <= 0:
                            sl = None
                    order = (ctx.buy if size > 0 else ctx.sell)(abs(size), instrument=inst, sl=sl,
                                                                 tag=f"decision:{self.n_decisions}")
                    order_id = str(order.id)
                    action = "buy" if size > 0 else "sell"
                    reason = sized.reason if verdict.rule is None else f"{sized.reason}, clipped by {verdict.rule}"
        decision = Decision(
            id=f"{self.name}:{inst}:{len(s['close']) - 1}:{self.n_decisions}", strategy=self.name, instrument=inst,
            time_ns=now, bar=len(s["close"]) - 1, score=score, threshold=self.threshold, action=action,
            reason=reason, factors=tuple(factors),
            signal=None if signal is None else {"pattern": signal.pattern, "direction": str(signal.direction),
                                                "strength": signal.strength, "features": dict(signal.features)},
            model=None if pred is None or not pred.ok else pred.value.model,
            model_version=None if pred is None or not pred.ok else pred.value.version,
            inference_path=None if pred is None or not pred.ok else str(pred.value.path),
            sentiment_source=None if sent is None or not sent.ok else sent.value.source,
            target_position=target, order_size=size, risk_rule=rule, order_id=order_id,
            latency_us=(time.perf_counter() - started) * 1e6)
        self.n_decisions += 1
        ctx.record_decision(decision)

