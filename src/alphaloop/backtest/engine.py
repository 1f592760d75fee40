"""The event-driven backtester.

Per bar: the broker matches pending orders against the bar (so an order never fills on data from
before it was sent), the account is checked for ruin, the strategy's histories grow by one value,
and the strategy's ``on_bar`` runs. Several instruments are merged on one UTC timeline.
The equity curve is rebuilt afterwards from the broker's state after each fill (vectorised), which
keeps the per-bar loop to a few list operations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from alphaloop.backtest.context import BacktestContext, InstrumentFeed
from alphaloop.backtest.fingerprint import fingerprint
from alphaloop.backtest.metrics import compute_metrics
from alphaloop.core.errors import DataError, StrategyError
from alphaloop.core.market import Bar
from alphaloop.core.orders import Fill
from alphaloop.core.results import TRADE_COLUMNS, BacktestResult
from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.execution.broker import BrokerConfig, SimulatedBroker
from alphaloop.strategy.base import Strategy
from alphaloop.strategy.services import Services

Progress = Callable[[int, int], None]
_CHUNK = 8192  # bars between progress callbacks
_NAT = np.iinfo(np.int64).min


def _as_feeds(data: pd.DataFrame | Mapping[str, pd.DataFrame]) -> list[InstrumentFeed]:
    if isinstance(data, pd.DataFrame):
        data = {str(data.attrs.get("instrument", "asset")): data}
    if not data:
        raise DataError("no data to backtest")
    feeds = []
    for name, df in data.items():
        missing = [c for c in ("open", "high", "low", "close") if c not in df.columns]
        if missing:
            raise DataError(f"missing column(s) {', '.join(missing)} (load data with alphaloop.data.load_bars)",
                            source=str(df.attrs.get("source", name)))
        if len(df) == 0:
            raise DataError("no bars", source=str(df.attrs.get("source", name)))
        if "volume" not in df.columns:
            df = df.assign(volume=0.0)
        feeds.append(InstrumentFeed(name, df))
    return feeds


class _Ledger:
    """Broker state after each step that had fills (enough to rebuild equity at every bar), and the
    hand-off of new fills to the strategy's ``on_fill``."""

    def __init__(self, broker: SimulatedBroker, on_fill: Callable[[Fill], None] | None,
                 feeds: list[InstrumentFeed] | None = None):
        self.broker = broker
        self.on_fill = on_fill
        self.feeds = feeds or []
        self.steps: list[int] = []
        self.rows: list[tuple[float, ...]] = []
        self._seen = 0

    def record(self, step: int, pre_growth: bool = False) -> None:
        b = self.broker
        if len(b.fills) != self._seen or not self.steps:
            new = b.fills[self._seen:]
            self._seen = len(b.fills)
            if self.on_fill is not None and new:
                for feed in self.feeds:
                    feed.pre_growth = pre_growth
                try:
                    for fill in new:
                        self.on_fill(fill)
                finally:
                    for feed in self.feeds:
                        feed.pre_growth = False
            books = b.books
            if len(books) == 1:
                row = (b.balance, books[0].size, books[0].cost)
            else:
                row = (b.balance, *(bk.size for bk in books), *(bk.cost for bk in books))
            if self.steps and self.steps[-1] == step:
                self.rows[-1] = row
            else:
                self.steps.append(step)
                self.rows.append(row)


def run_backtest(strategy: Strategy, data: pd.DataFrame | Mapping[str, pd.DataFrame],
                 config: BrokerConfig | None = None, *, spec: StrategySpec | None = None,
                 progress: Progress | None = None, services: Services | None = None) -> BacktestResult:
    """Run ``strategy`` over ``data`` (one DataFrame, or instrument -> DataFrame) and report.

    Open positions are closed at the end of each instrument's data the way backtesting.py's
    ``finalize_trades=True`` does (at the last bar's open); orders still pending then are cancelled.
    """
    config = config or BrokerConfig()
    feeds = _as_feeds(data)
    broker = SimulatedBroker([f.name for f in feeds], config)
    ctx = BacktestContext(broker, feeds, services)
    overrides_on_fill = type(strategy).on_fill is not Strategy.on_fill
    ledger = _Ledger(broker, (lambda fill: strategy.on_fill(ctx, fill)) if overrides_on_fill else None, feeds)
    try:
        strategy.init(ctx)
    except StrategyError:
        raise
    except Exception as e:
        raise StrategyError(f"{type(strategy).__name__}.init failed: {type(e).__name__}: {e}") from e

    if len(feeds) == 1:
        ruined = _run_single(strategy, ctx, broker, feeds[0], ledger, progress)
        step_index = [np.arange(feeds[0].n)]
        times = feeds[0].times_ns
    else:
        times, step_index = _timeline(feeds)
        ruined = _run_multi(strategy, ctx, broker, feeds, times, step_index, ledger, progress)
    if ruined is None and len(feeds) == 1:
        _settle(broker, feeds[0], config.fill_on)
        ledger.record(len(times) - 1)
    result = _result(strategy, spec, feeds, broker, ledger, times, step_index, config, ruined)
    result.decisions = ctx.decisions
    return result


def _pattern_hook(strategy: Strategy, ctx: BacktestContext) -> Callable[[InstrumentFeed, int], None] | None:
    """For a strategy that listens to patterns: a per-bar call that feeds the bar to one pattern
    engine (state per instrument) and hands each signal to ``on_signal``; the bar is complete when
    the strategy sees it, exactly as live."""
    specs = strategy.pattern_detectors()
    if not specs:
        return None
    from alphaloop.patterns import PatternEngine

    engine = PatternEngine(specs)
    on_signal = strategy.on_signal

    def run(feed: InstrumentFeed, i: int) -> None:
        c = feed.columns
        bar = Bar(feed.name, pd.Timestamp(c["time"][i], tz="UTC"), c["open"][i], c["high"][i], c["low"][i],
                  c["close"][i], c["volume"][i])
        for signal in engine.on_bar(bar):
            on_signal(ctx, signal)

    return run


def _on_bar_error(strategy: Strategy, e: Exception, where: str) -> StrategyError:
    return StrategyError(f"{type(strategy).__name__}.on_bar failed at {where}: {type(e).__name__}: {e}")


def _run_single(strategy: Strategy, ctx: BacktestContext, broker: SimulatedBroker, feed: InstrumentFeed,
                ledger: _Ledger, progress: Progress | None) -> int | None:
    book = broker.books[0]
    c_ = feed.columns["close"]  # read every bar: a list; the rest only on bars with orders: arrays
    o_, h_, l_, v_, t_ = (feed.arrays[f] for f in ("open", "high", "low", "volume", "time"))
    on_bar, feeds, n = strategy.on_bar, feed.feeds, feed.n
    signals_at = _pattern_hook(strategy, ctx)
    at_close = broker.config.fill_on == "close"
    process, record = broker.process, ledger.record
    ledger.record(0)
    ruin_lo, ruin_hi = -math.inf, math.inf
    for start in range(0, n, _CHUNK):
        for i in range(start, min(start + _CHUNK, n)):
            feed.i = i
            c = c_[i]
            if book.orders:
                process(book, i, int(t_[i]), float(o_[i]), float(h_[i]), float(l_[i]), c, float(v_[i]))
                record(i, True)
                ruin_lo, ruin_hi = broker.ruin_band()
            if c <= ruin_lo or c >= ruin_hi:
                book.price = c
                _ruin(broker, [feed], ledger, i)
                return i
            for append, column in feeds:
                append(column[i])
            try:
                if signals_at is not None:
                    signals_at(feed, i)
                on_bar(ctx)
            except StrategyError:
                raise
            except Exception as e:
                raise _on_bar_error(strategy, e, f"bar {i} ({feed.time(i)})") from e
            if at_close and book.orders:
                broker.process_close(book, i, int(t_[i]), c, float(v_[i]))
                record(i)
                ruin_lo, ruin_hi = broker.ruin_band()
        if progress is not None:
            progress(min(start + _CHUNK, n), n)
    return None


def _timeline(feeds: list[InstrumentFeed]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The union of all bar times, and for each instrument the step of each of its bars."""
    times = np.unique(np.concatenate([f.times_ns for f in feeds]))
    return times, [np.searchsorted(times, f.times_ns) for f in feeds]


def _run_multi(strategy: Strategy, ctx: BacktestContext, broker: SimulatedBroker, feeds: list[InstrumentFeed],
               times: np.ndarray, step_index: list[np.ndarray], ledger: _Ledger,
               progress: Progress | None) -> int | None:
    # for each step, which (feed, bar) pairs happen on it
    at_step: list[list[tuple[InstrumentFeed, int]]] = [[] for _ in range(len(times))]
    for feed, steps in zip(feeds, step_index):
        for i, s in enumerate(steps.tolist()):
            at_step[s].append((feed, i))
    at_close = broker.config.fill_on == "close"
    books = broker.books
    signals_at = _pattern_hook(strategy, ctx)
    ledger.record(0)
    n = len(times)
    for s, happening in enumerate(at_step):
        for feed, i in happening:
            feed.i = i
            book = broker.book_by_name[feed.name]
            cols = feed.columns
            if book.orders:
                broker.process(book, i, feed.columns["time"][i], cols["open"][i], cols["high"][i], cols["low"][i],
                               cols["close"][i], cols["volume"][i])
                ledger.record(s, True)
            else:
                book.price = cols["close"][i]
        if any(b.lots for b in books) and broker.equity() <= 0:
            _ruin(broker, feeds, ledger, s)
            return s
        for feed, i in happening:
            for append, column in feed.feeds:
                append(column[i])
        ctx.step = s
        try:
            if signals_at is not None:
                for feed, i in happening:
                    signals_at(feed, i)
            strategy.on_bar(ctx)
        except StrategyError:
            raise
        except Exception as e:
            raise _on_bar_error(strategy, e, f"step {s} ({pd.Timestamp(int(times[s]), tz='UTC')})") from e
        if at_close:
            for feed, i in happening:
                book = broker.book_by_name[feed.name]
                if book.orders:
                    broker.process_close(book, i, feed.columns["time"][i], feed.columns["close"][i], feed.columns["volume"][i])
                    ledger.record(s)
        for feed, i in happening:
            if i == feed.n - 1:  # this instrument's data ends here: settle it now
                _settle(broker, feed, broker.config.fill_on)
                ledger.record(s)
        if progress is not None and (s % _CHUNK == 0 or s == n - 1):
            progress(s + 1, n)
    return None


def _ruin(broker: SimulatedBroker, feeds: list[InstrumentFeed], ledger: _Ledger, step: int) -> None:
    """Equity hit zero: liquidate at the current close and stop (as backtesting.py does)."""
    for feed in feeds:
        book = broker.book_by_name[feed.name]
        broker.close_all(book, book.price, max(feed.i, 0), feed.columns["time"][max(feed.i, 0)], "out_of_money")
    broker.balance = 0.0
    ledger.record(step, True)


def _settle(broker: SimulatedBroker, feed: InstrumentFeed, fill_on: str) -> None:
    """End of an instrument's data: cancel what is still pending and close the open lots.

    Lots close at the last bar's open, as backtesting.py's ``finalize_trades=True`` does (at its close
    with ``fill_on="close"``). Orders still pending are cancelled, never filled: an order sent on the
    last bar has no later bar to fill on (backtesting.py fills it at that bar's open, before it was sent).
    """
    book = broker.book_by_name[feed.name]
    for order in list(book.orders):
        broker.cancel(order, "data ended before the order could fill")
    i = feed.n - 1
    price = feed.columns["close"][i] if fill_on == "close" else feed.columns["open"][i]
    for lot in list(reversed(book.lots)):
        broker.close_lot(book, lot, price, i, feed.columns["time"][i], "end_of_data")


def _trades_frame(trades: list) -> pd.DataFrame:
    """Column by column (no per-trade property calls): pnl and return are computed vectorised."""
    size = np.array([t.size for t in trades], dtype=float)
    entry = np.array([t.entry_price for t in trades], dtype=float)
    exit_ = np.array([np.nan if t.exit_price is None else t.exit_price for t in trades], dtype=float)
    commission = np.array([t.commission for t in trades], dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        pnl = size * (exit_ - entry) - commission
        ret = 100.0 * ((exit_ / entry - 1.0) * np.sign(size) - commission / (np.abs(size) * entry))

    def times(values: list) -> pd.DatetimeIndex:
        ns = np.array([_NAT if v is None else v for v in values], dtype=np.int64)
        return pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC")

    return pd.DataFrame({
        "instrument": [t.instrument for t in trades], "size": size,
        "entry_bar": np.array([t.entry_bar for t in trades], dtype=np.int64),
        "exit_bar": pd.array([t.exit_bar for t in trades], dtype="Int64"),
        "entry_time": times([t.entry_ns for t in trades]), "exit_time": times([t.exit_ns for t in trades]),
        "entry_price": entry, "exit_price": exit_, "pnl": pnl, "return_pct": ret, "commission": commission,
        "tag": [t.tag for t in trades], "exit_reason": [t.exit_reason for t in trades],
    }, columns=list(TRADE_COLUMNS))


def _result(strategy: Strategy, spec: StrategySpec | None, feeds: list[InstrumentFeed], broker: SimulatedBroker,
            ledger: _Ledger, times: np.ndarray, step_index: list[np.ndarray], config: BrokerConfig,
            ruined: int | None) -> BacktestResult:
    n, k = len(times), len(feeds)
    # close of every instrument at every step, carried forward over steps where it has no bar
    closes = np.full((n, k), np.nan)
    for j, (feed, steps) in enumerate(zip(feeds, step_index)):
        closes[steps, j] = feed.arrays["close"]
    closes = pd.DataFrame(closes).ffill().fillna(0.0).to_numpy()
    at = np.searchsorted(np.asarray(ledger.steps), np.arange(n), side="right") - 1
    state = np.asarray(ledger.rows)[at]
    balance, sizes, costs = state[:, 0], state[:, 1:1 + k], state[:, 1 + k:]
    position_value = (sizes * closes).sum(axis=1)
    equity = balance + (position_value - costs.sum(axis=1))
    cash = balance - costs.sum(axis=1)
    if ruined is not None:
        equity[ruined:] = 0.0
        cash[ruined:] = 0.0
        position_value[ruined:] = 0.0
    index = pd.DatetimeIndex(np.asarray(times, dtype=np.int64).view("datetime64[ns]"), name="time").tz_localize("UTC")
    peak = np.maximum.accumulate(equity)
    eq = pd.DataFrame({"equity": equity, "cash": cash, "position_value": position_value,
                       "drawdown_pct": np.where(peak > 0, (equity / peak - 1) * 100, 0.0)}, index=index)
    trades = _trades_frame(broker.closed_trades)
    open_trades = _trades_frame([lot for b in broker.books for lot in b.lots])
    fl = broker.fills
    fills = pd.DataFrame({
        "order_id": np.array([f.order_id for f in fl], dtype=np.int64),
        "instrument": [f.instrument for f in fl],
        "bar": np.array([f.bar for f in fl], dtype=np.int64),
        "time": pd.DatetimeIndex(np.array([f.time_ns for f in fl], dtype=np.int64).view("datetime64[ns]"))
        .tz_localize("UTC"),
        "size": np.array([f.size for f in fl], dtype=float),
        "price": np.array([f.price for f in fl], dtype=float),
        "commission": np.array([f.commission for f in fl], dtype=float),
        "reason": [f.reason for f in fl],
    })
    exposure = int((np.abs(sizes).sum(axis=1) > 0).sum())
    first = feeds[0]
    bench = pd.Series(first.arrays["close"])
    metrics = compute_metrics(eq["equity"], trades, config.initial_cash, exposure, bench)
    spec = spec or StrategySpec(strategy.name or type(strategy).__name__, dict(strategy.parameters))
    return BacktestResult(
        spec=spec, instruments=[f.name for f in feeds], start=index[0], end=index[-1], n_bars=n,
        initial_cash=config.initial_cash, metrics=metrics, trades=trades, equity=eq,
        fingerprint=fingerprint(trades, metrics), open_trades=open_trades, fills=fills, n_orders=broker.n_orders,
        n_fills=len(broker.fills),
        data_source=", ".join(str(f.name) for f in feeds),
        settings={"commission": {"rate": config.commission.rate, "per_unit": config.commission.per_unit,
                                 "fixed": config.commission.fixed},
                  "spread": config.spread, "fill_on": config.fill_on, "lot_size": config.lot_size,
                  "slippage": repr(config.slippage)},
    )
