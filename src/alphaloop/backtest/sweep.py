"""Vectorised parameter sweeps of the built-in strategies: every combination in one compiled pass.

``sweep_sma_cross`` runs the ``sma_cross`` strategy for a whole fast/slow grid and reports, per
combination, the numbers ``run_backtest`` reports for it, equal to the last bit: same trades, same
final equity, drawdown, Sharpe and exposure. It gets there by replaying the event-driven
backtester's rules for this one strategy, operation for operation, in a numba kernel:

* each distinct moving average is computed once, by :func:`alphaloop.indicators.sma` itself (pandas'
  rolling mean), so the crossings are the ones the strategy sees;
* a cross on bar ``i`` sends ``close_position()`` (when a lot is open) then a relative order of all available equity
  (``fraction = 1 - eps``); they fill on bar ``i + 1``'s open (``fill_on="next_open"``) or at bar
  ``i``'s close (``fill_on="close"``): the open lot closes first, then the new one is sized as the
  broker sizes it, ``units = (available * fraction) // ((adj + commission(fraction, price) / fraction)
  * lot)``, whole lots, rejected when that is zero or costs more than what is available;
* the spread raises a long's entry price (lowers a short's); commission is charged at entry (on the
  adjusted price) and exit (on the raw price);
* ruin: once a bar closes with equity <= 0 the position is liquidated at that close and the run
  stops with equity 0 from that bar on;
* end of data: orders sent on the last bar are cancelled; an open lot is closed at the last bar's
  open (at its close with ``fill_on="close"``).

The kernel is compiled without fast-math (no reassociation, no fused multiply-add), so every
balance is the same IEEE double the broker computes. Combinations run in parallel (``prange``); each
is independent, so the results do not depend on the number of threads.
Slippage models are not supported: the sweep is for ``BrokerConfig``'s default ``NoSlippage``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral
from typing import Any, overload

import numba
import numpy as np
import pandas as pd

from alphaloop.backtest.engine import _trades_frame
from alphaloop.core.errors import DataError, StrategyError
from alphaloop.core.orders import Trade
from alphaloop.execution.broker import BrokerConfig
from alphaloop.execution.costs import Commission
from alphaloop.indicators import sma
from alphaloop.strategy.context_base import DEFAULT_FRACTION

__all__ = ["SWEEP_COLUMNS", "sma_cross_trades", "sweep_sma_cross"]

SWEEP_COLUMNS = ("fast", "slow", "final_equity", "return_pct", "n_trades", "max_drawdown_pct", "sharpe",
                 "exposure_pct")
_REASONS = ("signal", "end_of_data", "out_of_money")  # trade exit reasons, by the kernel's code
_TRADE_FIELDS = 7  # entry_bar, exit_bar, size, entry_price, exit_price, commission, reason code


def _jit(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``numba.njit`` with an on-disk cache where one is writable (numba raises, not warns, when
    none is), compiled in memory otherwise. ``error_model="numpy"``: no division can be by zero
    here (prices are checked > 0), so the checks Python's model adds are dead weight."""
    def wrap(func: Callable[..., Any]) -> Any:
        try:
            return numba.njit(cache=True, error_model="numpy", **options)(func)
        except (RuntimeError, OSError) as exc:
            warnings.warn(f"alphaloop.backtest.sweep: cannot cache the compiled {func.__name__} ({exc}); "
                          "compiling it in memory", RuntimeWarning, stacklevel=2)
            return numba.njit(cache=False, error_model="numpy", **options)(func)
    return wrap


# ----------------------------------------------------------------------------- compiled kernels

@_jit()
def _commission(size, price, fixed, rate, per_unit):
    # Commission.cost_function, term by term in the same order
    c = fixed + abs(size) * price * rate
    if per_unit:
        c += abs(size) * per_unit
    return c


@_jit()
def _close_lot(trades, n_trades, i, reason, size, entry, entry_bar, price, balance, fixed, rate, per_unit):
    """SimulatedBroker._close for a whole lot: the new balance and trade count (and the trade,
    when ``trades`` has room for it)."""
    commission = _commission(size, price, fixed, rate, per_unit)
    balance += size * (price - entry) - commission
    if trades.shape[0] > 0:
        row = trades[n_trades]
        row[0], row[1], row[2], row[3], row[4] = entry_bar, i, size, entry, price
        row[5] = commission + _commission(size, entry, fixed, rate, per_unit)
        row[6] = reason
    return balance, n_trades + 1


@_jit()
def _enter(sign, price, balance, fraction, fixed, rate, per_unit, spread, lot):
    """SimulatedBroker._fill for a relative order on a flat book: (size, entry price, balance);
    size 0 when the order is rejected."""
    adj = price * (1.0 + math.copysign(spread, sign))
    per_unit_cost = adj + _commission(fraction, price, fixed, rate, per_unit) / fraction
    available = balance if balance > 0.0 else 0.0  # max(0.0, equity - value of open lots): no lots
    units = (available * fraction) // (per_unit_cost * lot)  # numba's float // is Python's, bit for bit
    if units <= 0:
        return 0.0, 0.0, balance  # insufficient cash for one lot
    need = math.copysign(units * lot, sign)
    if abs(need) * per_unit_cost > available:
        return 0.0, 0.0, balance  # insufficient cash
    return need, adj, balance - _commission(need, adj, fixed, rate, per_unit)


@_jit()
def _fill(trades, n_trades, i, sign, close_first, price, balance, size, entry, entry_bar, fraction, fixed, rate,
          per_unit, spread, lot):
    """The two orders a cross sends, filled at ``price`` in the order they were sent: close the open
    lot (if there was one when they were sent), then the relative entry. Returns the new state:
    (balance, trades, size, entry price, entry bar, ruin band low, ruin band high)."""
    if close_first:
        balance, n_trades = _close_lot(trades, n_trades, i, 0, size, entry, entry_bar, price, balance,
                                       fixed, rate, per_unit)
    size, entry, balance = _enter(sign, price, balance, fraction, fixed, rate, per_unit, spread, lot)
    if size == 0.0:
        return balance, n_trades, 0.0, 0.0, entry_bar, -math.inf, math.inf
    edge = (size * entry - balance) / size  # SimulatedBroker.ruin_band: equity <= 0 at this close
    if size > 0.0:
        return balance, n_trades, size, entry, i, edge, math.inf
    return balance, n_trades, size, entry, i, -math.inf, edge


@_jit()
def _simulate(open_, close, fast, slow, day_slot, cash, fraction, fixed, rate, per_unit, spread, lot,
              at_close, daily, trades):
    """One fast/slow combination, bar by bar, as ``run_backtest`` runs ``sma_cross``.

    Writes the equity at each day's last bar into ``daily`` (by ``day_slot``) and, if ``trades``
    has rows, the closed trades; returns (final equity, trades, max drawdown, bars exposed).
    """
    n = close.shape[0]
    balance, size, entry, entry_bar = cash, 0.0, 0.0, 0
    lo, hi = -math.inf, math.inf  # closes at which equity <= 0 (none while flat)
    pending, close_first = 0.0, False  # next_open: the orders sent on the previous bar
    n_trades, exposed = 0, 0
    # max drawdown = min over bars of equity / running peak - 1. For one peak that is monotonic in
    # the equity (IEEE division and subtraction round monotonically), so only the lowest equity
    # since each peak needs the division: the same double as numpy's, without one per bar.
    peak, trough, mdd, equity = -math.inf, math.inf, 0.0, cash
    f_prev, s_prev = fast[0], slow[0]
    for i in range(n):
        c, f_now, s_now = close[i], fast[i], slow[i]
        if pending != 0.0:  # orders sent on bar i - 1 fill at this open
            balance, n_trades, size, entry, entry_bar, lo, hi = _fill(
                trades, n_trades, i, pending, close_first, open_[i], balance, size, entry, entry_bar, fraction,
                fixed, rate, per_unit, spread, lot)
            pending = 0.0
        if c <= lo or c >= hi:  # ruin: liquidate at this close; equity is 0 from this bar on
            balance, n_trades = _close_lot(trades, n_trades, i, 2, size, entry, entry_bar, c, balance,
                                           fixed, rate, per_unit)
            for j in range(i, n):
                if day_slot[j] >= 0:
                    daily[day_slot[j]] = 0.0
            trough = min(trough, 0.0)
            if peak > 0.0 and trough < peak:
                mdd = min(mdd, trough / peak - 1.0)
            return 0.0, n_trades, mdd, exposed
        # backtesting.lib.crossover: strict on both bars; NaN (warm-up) never crosses
        signal = 0.0
        if f_prev < s_prev and f_now > s_now:
            signal = 1.0
        elif s_prev < f_prev and s_now > f_now:
            signal = -1.0
        f_prev, s_prev = f_now, s_now
        if signal != 0.0:
            if at_close:  # fill now, at this close
                balance, n_trades, size, entry, entry_bar, lo, hi = _fill(
                    trades, n_trades, i, signal, size != 0.0, c, balance, size, entry, entry_bar, fraction,
                    fixed, rate, per_unit, spread, lot)
            else:
                pending, close_first = signal, size != 0.0
        if i == n - 1 and size != 0.0:  # end of data: pending orders are dropped, the lot closes
            balance, n_trades = _close_lot(trades, n_trades, i, 1, size, entry, entry_bar,
                                           c if at_close else open_[i], balance, fixed, rate, per_unit)
            size = 0.0
        # the engine's equity curve, in its order of operations (cost = size * entry, 0 when flat)
        equity = balance + (size * c - size * entry)
        exposed += size != 0.0
        if day_slot[i] >= 0:
            daily[day_slot[i]] = equity
        if equity > peak:
            if peak > 0.0 and trough < peak:
                mdd = min(mdd, trough / peak - 1.0)
            peak = trough = equity
        elif equity < trough:
            trough = equity
    if peak > 0.0 and trough < peak:
        mdd = min(mdd, trough / peak - 1.0)
    return equity, n_trades, mdd, exposed


@_jit(parallel=True)
def _sweep(open_, close, averages, fast_row, slow_row, day_slot, cash, fraction, fixed, rate, per_unit,
           spread, lot, at_close, final, n_trades, mdd, exposed, daily):
    """Every combination ``k`` (rows ``fast_row[k]`` and ``slow_row[k]`` of ``averages``), in parallel."""
    no_trades = np.empty((0, _TRADE_FIELDS))
    for k in numba.prange(fast_row.shape[0]):
        final[k], n_trades[k], mdd[k], exposed[k] = _simulate(
            open_, close, averages[fast_row[k]], averages[slow_row[k]], day_slot, cash, fraction, fixed, rate,
            per_unit, spread, lot, at_close, daily[k], no_trades)


# ----------------------------------------------------------------------------- input checks

def _windows(name: str, values: Any, n_bars: int) -> list[int]:
    """Distinct positive integer windows, sorted, none longer than the data."""
    if isinstance(values, Integral | str) or not isinstance(values, Iterable):
        raise StrategyError(f"{name} must be a sequence of integer windows, got {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, Integral):
            raise StrategyError(f"{name}: windows must be integers, got {v!r}")
        if v < 1:
            raise StrategyError(f"{name}: windows must be >= 1, got {v}")
        if v > n_bars:
            raise StrategyError(f"{name}: window {v} is longer than the data ({n_bars} bars)")
        out.append(int(v))
    if not out:
        raise StrategyError(f"{name} is empty: give at least one window")
    return sorted(set(out))


def _config(cash: float, commission: float | Commission, spread: float, lot_size: float,
            fill_on: str) -> BrokerConfig:
    """The broker config the sweep replays; BrokerConfig checks every value (ConfigError)."""
    if not isinstance(commission, Commission):
        commission = Commission(rate=float(commission))
    return BrokerConfig(initial_cash=float(cash), commission=commission, spread=float(spread),
                        lot_size=float(lot_size), fill_on=fill_on)


def _prices(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(open, close, UTC times in ns) of a one-instrument frame, as the engine reads them."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"the sweep takes one instrument's bars as a DataFrame, got {type(df).__name__}")
    source = str(df.attrs.get("source", df.attrs.get("instrument", "DataFrame")))
    missing = [c for c in ("open", "close") if c not in df.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)} (load data with alphaloop.data.load_bars)",
                        source=source)
    if len(df) == 0:
        raise DataError("no bars", source=source)
    if not isinstance(df.index, pd.DatetimeIndex):
        raise DataError("bars need a DatetimeIndex (load data with alphaloop.data.load_bars)", source=source)
    index = df.index if df.index.tz is not None else df.index.tz_localize("UTC")
    times = index.tz_convert("UTC").as_unit("ns").asi8
    open_ = np.ascontiguousarray(df["open"].to_numpy(dtype=float))
    close = np.ascontiguousarray(df["close"].to_numpy(dtype=float))
    for name, x in (("open", open_), ("close", close)):
        bad = ~(np.isfinite(x) & (x > 0))
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"prices must be finite and > 0; got {x[i]} at bar {i}", source=source, field=name)
    return open_, close, times


def _days(times: np.ndarray) -> tuple[np.ndarray, int, int]:
    """For each bar, the slot of its UTC day if it is that day's last bar (else -1); the number of
    days; and the days per year the metrics annualise with (365 if any bar falls on a weekend).
    Exactly ``equity.groupby(equity.index.normalize()).last()`` of backtest/metrics.py."""
    index = pd.DatetimeIndex(times.view("datetime64[ns]")).tz_localize("UTC")
    last = pd.Series(np.arange(len(times)), index=index.normalize()).groupby(level=0).last().to_numpy()
    slot = np.full(len(times), -1, dtype=np.int64)
    slot[last] = np.arange(len(last))
    return slot, len(last), (365 if bool((index.day_of_week >= 5).any()) else 252)


def _sharpe(daily: np.ndarray, n_bars: int, per_year: int) -> np.ndarray:
    """compute_metrics' Sharpe from each row of day-end equity, with its exact numpy reductions."""
    out = np.full(daily.shape[0], math.nan)
    if n_bars <= 1 or daily.shape[1] < 3:
        return out
    with np.errstate(invalid="ignore", divide="ignore"):
        returns = daily[:, 1:] / daily[:, :-1] - 1.0  # Series.pct_change
    root = math.sqrt(per_year)
    for k in range(daily.shape[0]):
        rets = returns[k]
        if np.isnan(rets).any():  # 0 / 0 after a ruin: dropped, as .dropna() drops them
            rets = rets[~np.isnan(rets)]
        else:
            rets = rets.copy()  # a fresh 1-D array: the same reduction order as in compute_metrics
        if len(rets) > 1:
            sd = rets.std(ddof=1)
            out[k] = rets.mean() / sd * root if sd > 0 else math.nan
    return out


def _averages(close: np.ndarray, windows: list[int]) -> np.ndarray:
    """One row per window: the strategy's own indicator (pandas' rolling mean), so the sweep sees
    the crossings the strategy sees. pandas' rolling loop releases the GIL: windows run on threads."""
    out = np.empty((len(windows), len(close)))

    def fill(r: int) -> None:
        out[r] = sma(close, windows[r])

    workers = min(len(windows), numba.get_num_threads())
    if workers > 1 and len(close) * len(windows) >= 1_000_000:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(fill, range(len(windows))))
    else:
        for r in range(len(windows)):
            fill(r)
    return out


# ----------------------------------------------------------------------------- public API

@overload
def sweep_sma_cross(df: pd.DataFrame, fast_values: Iterable[int], slow_values: Iterable[int], *,
                    cash: float = ..., commission: float | Commission = ..., spread: float = ...,
                    lot_size: float = ..., fill_on: str = ..., trades_of: None = ...) -> pd.DataFrame: ...
@overload
def sweep_sma_cross(df: pd.DataFrame, fast_values: Iterable[int], slow_values: Iterable[int], *,
                    cash: float = ..., commission: float | Commission = ..., spread: float = ...,
                    lot_size: float = ..., fill_on: str = ...,
                    trades_of: tuple[int, int]) -> tuple[pd.DataFrame, pd.DataFrame]: ...
def sweep_sma_cross(df: pd.DataFrame, fast_values: Iterable[int], slow_values: Iterable[int], *,
                    cash: float = 10_000.0, commission: float | Commission = 0.0, spread: float = 0.0,
                    lot_size: float = 1.0, fill_on: str = "next_open",
                    trades_of: tuple[int, int] | None = None) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Backtest ``sma_cross`` for every ``fast < slow`` pair of the two grids in one compiled pass.

    Each row equals ``run_backtest(load_strategy("sma_cross", {"fast": f, "slow": s}), df,
    BrokerConfig(initial_cash=cash, commission=Commission(rate=commission), spread=spread,
    lot_size=lot_size, fill_on=fill_on))``: its final equity, return, number of closed trades,
    max drawdown, Sharpe and exposure (``commission`` may also be a ``Commission``).
    Rows are sorted by fast, then slow window; columns are :data:`SWEEP_COLUMNS`.

    With ``trades_of=(fast, slow)`` the result is ``(table, trades)``, ``trades`` being that
    combination's trades exactly as ``BacktestResult.trades`` lists them.
    Raises StrategyError for a bad grid (empty, non-integer or non-positive windows, a window
    longer than the data, no pair with fast < slow), DataError for bad bars, ConfigError for
    bad broker settings.
    """
    config = _config(cash, commission, spread, lot_size, fill_on)
    open_, close, times = _prices(df)
    n = len(close)
    fasts = _windows("fast_values", fast_values, n)
    slows = _windows("slow_values", slow_values, n)
    pairs = [(f, s) for f in fasts for s in slows if f < s]
    if not pairs:
        raise StrategyError(f"no valid combination: sma_cross needs fast < slow, got fast_values={fasts} "
                            f"and slow_values={slows}")
    trades = None
    if trades_of is not None:
        trades = sma_cross_trades(df, *trades_of, cash=cash, commission=commission, spread=spread,
                                  lot_size=lot_size, fill_on=fill_on)

    windows = sorted(set(fasts) | set(slows))
    row = {w: r for r, w in enumerate(windows)}
    averages = _averages(close, windows)
    fast = np.array([f for f, _ in pairs], dtype=np.int64)
    slow = np.array([s for _, s in pairs], dtype=np.int64)
    day_slot, n_days, per_year = _days(times)
    m = len(pairs)
    final, mdd, daily = np.empty(m), np.empty(m), np.empty((m, n_days))
    n_trades, exposed = np.empty(m, dtype=np.int64), np.empty(m, dtype=np.int64)
    c = config.commission
    _sweep(open_, close, averages, np.array([row[f] for f in fast], dtype=np.int64),
           np.array([row[s] for s in slow], dtype=np.int64), day_slot, config.initial_cash, DEFAULT_FRACTION,
           c.fixed, c.rate, c.per_unit, config.spread, config.lot_size, config.fill_on == "close",
           final, n_trades, mdd, exposed, daily)
    table = pd.DataFrame({
        "fast": fast, "slow": slow, "final_equity": final,
        "return_pct": (final / config.initial_cash - 1.0) * 100.0,
        "n_trades": n_trades, "max_drawdown_pct": mdd * 100.0,
        "sharpe": _sharpe(daily, n, per_year),
        "exposure_pct": 100.0 * exposed / n,
    }, columns=list(SWEEP_COLUMNS))
    return table if trades is None else (table, trades)


def sma_cross_trades(df: pd.DataFrame, fast: int, slow: int, *, cash: float = 10_000.0,
                     commission: float | Commission = 0.0, spread: float = 0.0, lot_size: float = 1.0,
                     fill_on: str = "next_open") -> pd.DataFrame:
    """The closed trades of one ``sma_cross`` combination, from the sweep's kernel, in the columns
    and dtypes of ``BacktestResult.trades`` (and equal to them)."""
    config = _config(cash, commission, spread, lot_size, fill_on)
    open_, close, times = _prices(df)
    n = len(close)
    (f,) = _windows("fast", [fast], n)
    (s,) = _windows("slow", [slow], n)
    if not f < s:
        raise StrategyError(f"sma_cross needs 0 < fast < slow, got fast={f}, slow={s}")
    day_slot = np.full(n, -1, dtype=np.int64)  # no daily equity wanted
    rows = np.empty((n + 1, _TRADE_FIELDS))  # at most one exit per bar, plus the one at the end
    c = config.commission
    _, count, _, _ = _simulate(open_, close, sma(close, f), sma(close, s), day_slot, config.initial_cash,
                               DEFAULT_FRACTION, c.fixed, c.rate, c.per_unit, config.spread, config.lot_size,
                               config.fill_on == "close", np.empty(0), rows)
    instrument = str(df.attrs.get("instrument", "asset"))
    trades = []
    for entry_bar, exit_bar, size, entry, exit_, commission_paid, reason in rows[:count].tolist():
        e, x = int(entry_bar), int(exit_bar)
        trades.append(Trade(id=len(trades), instrument=instrument, size=size, entry_bar=e,
                            entry_ns=int(times[e]), entry_price=entry, exit_bar=x, exit_ns=int(times[x]),
                            exit_price=exit_, commission=commission_paid, exit_reason=_REASONS[int(reason)]))
    return _trades_frame(trades)

