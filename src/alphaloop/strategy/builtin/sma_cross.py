"""Moving-average crossover, always in the market (backtesting.py's SmaCross example).

On a fast-over-slow cross: close any short and go long with all available cash; on the opposite
cross: close and go short. Sizes and fills are backtesting.py's default ``buy()``/``sell()``.
"""

from __future__ import annotations

from alphaloop.core.errors import StrategyError
from alphaloop.indicators import sma
from alphaloop.strategy.base import Context, Strategy
from alphaloop.strategy.registry import register_strategy


@register_strategy
class SmaCross(Strategy):
    name = "sma_cross"
    params = {"fast": 10, "slow": 20}

    def validate(self) -> None:
        if not 0 < self.fast < self.slow:
            raise StrategyError(f"sma_cross needs 0 < fast < slow, got fast={self.fast}, slow={self.slow}")

    def init(self, ctx: Context) -> None:
        self.fast_ma = ctx.indicator(sma, "close", self.fast)
        self.slow_ma = ctx.indicator(sma, "close", self.slow)

    def on_bar(self, ctx: Context) -> None:
        f, s = self.fast_ma, self.slow_ma
        if len(f) < 2:
            return
        # strict inequalities on both bars, NaN (warm-up) never crosses: backtesting.lib.crossover
        if f[-2] < s[-2] and f[-1] > s[-1]:
            ctx.close_position()
            ctx.buy()
        elif s[-2] < f[-2] and s[-1] > f[-1]:
            ctx.close_position()
            ctx.sell()
