"""Performance metrics from an equity curve and a trade list.

Conventions (written down because every library differs a little):
* drawdowns are negative percentages (backtesting.py's convention);
* Sharpe, Sortino and volatility use daily returns of the equity curve (last value per UTC day),
  annualised with 365 days when the data has weekend bars (crypto) and 252 otherwise;
  risk-free rate 0; Sharpe and Sortino are mean / deviation * sqrt(days per year);
* annualised return is the compound growth rate over the calendar time of the data.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def _max_drawdown(equity: np.ndarray) -> tuple[float, int]:
    peak = np.maximum.accumulate(equity)
    dd = np.where(peak > 0, equity / peak - 1.0, 0.0)
    below = dd < 0
    longest = 0
    # the longest run of bars spent below a previous peak
    if below.any():
        edges = np.flatnonzero(np.diff(np.concatenate(([0], below.view(np.int8), [0]))))
        runs = edges[1::2] - edges[::2]
        longest = int(runs.max())
    return float(dd.min() * 100.0) if len(dd) else 0.0, longest


def _daily_returns(equity: pd.Series) -> tuple[np.ndarray, int]:
    daily = equity.groupby(equity.index.normalize()).last()
    has_weekend = bool((equity.index.day_of_week >= 5).any())
    return daily.pct_change().dropna().to_numpy(), (365 if has_weekend else 252)


def compute_metrics(equity: pd.Series, trades: pd.DataFrame, initial_cash: float,
                    exposure_bars: int, benchmark_close: pd.Series | None = None) -> dict[str, float]:
    """``equity`` indexed by UTC bar time; ``trades`` with pnl, return_pct, commission columns."""
    values = equity.to_numpy(dtype=float)
    final = float(values[-1]) if len(values) else float(initial_cash)
    n = len(values)
    m: dict[str, float] = {"initial_cash": float(initial_cash), "final_equity": final,
                           "peak_equity": float(values.max()) if n else final}
    m["return_pct"] = (final / initial_cash - 1.0) * 100.0
    years = (equity.index[-1] - equity.index[0]).total_seconds() / (365.25 * 86400) if n > 1 else 0.0
    m["return_ann_pct"] = ((final / initial_cash) ** (1 / years) - 1.0) * 100.0 if years > 0 and final > 0 else math.nan
    rets, per_year = _daily_returns(equity) if n > 1 else (np.array([]), 252)
    if len(rets) > 1:
        sd = rets.std(ddof=1)
        down = math.sqrt(np.mean(np.minimum(rets, 0.0) ** 2))
        mean = rets.mean()
        m["volatility_ann_pct"] = sd * math.sqrt(per_year) * 100.0
        m["sharpe"] = mean / sd * math.sqrt(per_year) if sd > 0 else math.nan
        m["sortino"] = mean / down * math.sqrt(per_year) if down > 0 else math.nan
    else:
        m["volatility_ann_pct"] = m["sharpe"] = m["sortino"] = math.nan
    m["max_drawdown_pct"], dd_bars = _max_drawdown(values) if n else (0.0, 0)
    m["max_drawdown_duration_bars"] = float(dd_bars)
    m["calmar"] = (m["return_ann_pct"] / -m["max_drawdown_pct"]
                   if m["max_drawdown_pct"] < 0 and not math.isnan(m["return_ann_pct"]) else math.nan)
    m["exposure_pct"] = 100.0 * exposure_bars / n if n else 0.0
    pnl = trades["pnl"].to_numpy(dtype=float) if len(trades) else np.array([])
    rp = trades["return_pct"].to_numpy(dtype=float) if len(trades) else np.array([])
    m["n_trades"] = float(len(pnl))
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    m["win_rate_pct"] = 100.0 * len(wins) / len(pnl) if len(pnl) else math.nan
    m["profit_factor"] = wins.sum() / -losses.sum() if len(losses) else (math.inf if len(wins) else math.nan)
    m["expectancy"] = float(pnl.mean()) if len(pnl) else math.nan
    m["avg_trade_pct"] = float(rp.mean()) if len(rp) else math.nan
    m["best_trade_pct"] = float(rp.max()) if len(rp) else math.nan
    m["worst_trade_pct"] = float(rp.min()) if len(rp) else math.nan
    m["commissions"] = float(trades["commission"].sum()) if len(trades) else 0.0
    if benchmark_close is not None and len(benchmark_close) > 1:
        m["buy_and_hold_return_pct"] = (float(benchmark_close.iloc[-1]) / float(benchmark_close.iloc[0]) - 1) * 100
    return m
