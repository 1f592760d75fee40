"""The result of a backtest, as the backtester returns it and the store keeps it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from alphaloop.core.strategy_spec import StrategySpec

TRADE_COLUMNS = ("instrument", "size", "entry_bar", "exit_bar", "entry_time", "exit_time",
                 "entry_price", "exit_price", "pnl", "return_pct", "commission", "tag", "exit_reason")


@dataclass(slots=True)
class BacktestResult:
    """Metrics, trades and the equity curve of one run.

    ``trades`` has the columns of ``TRADE_COLUMNS`` (closed trades only; ``open_trades`` holds the
    ones still open at the end). ``equity`` is indexed by bar time with columns ``equity``, ``cash``
    ``position_value`` and ``drawdown_pct``; ``fills`` lists every execution. ``fingerprint`` hashes trades and metrics so two runs can be proven equal.
    """

    spec: StrategySpec
    instruments: list[str]
    start: pd.Timestamp
    end: pd.Timestamp
    n_bars: int
    initial_cash: float
    metrics: dict[str, float]
    trades: pd.DataFrame
    equity: pd.DataFrame
    fingerprint: str
    open_trades: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(TRADE_COLUMNS)))
    fills: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["order_id", "instrument", "bar", "time", "size", "price", "commission", "reason"]))
    decisions: list[Any] = field(default_factory=list)  # core.decisions.Decision, for strategies that record them
    n_orders: int = 0
    n_fills: int = 0
    data_source: str = ""
    run_id: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def final_equity(self) -> float:
        return float(self.metrics["final_equity"])

    def trades_as_records(self) -> list[dict[str, Any]]:
        """Trades as plain JSON-ready dicts (times as ISO strings)."""
        out = []
        for row in self.trades.itertuples(index=False):
            d = row._asdict()
            for k in ("entry_time", "exit_time"):
                d[k] = None if pd.isna(d[k]) else pd.Timestamp(d[k]).isoformat()
            for k in ("entry_bar", "exit_bar"):
                d[k] = int(d[k])
            for k in ("size", "entry_price", "exit_price", "pnl", "return_pct", "commission"):
                d[k] = float(d[k])
            out.append(d)
        return out
