"""Fixtures for the store tests: every test runs once on SQLite and once on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import create_engine, inspect, text

from alphaloop.core.results import TRADE_COLUMNS, BacktestResult
from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.store import Store
from alphaloop.store.models import Base


class FakeClock:
    """Advances one second per reading, so "newest/oldest first" orderings are deterministic."""

    def __init__(self, start: dt.datetime = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)):
        self.now = start

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=1)
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("postgres_url")
    _empty_tables(url)
    return url


def _empty_tables(url: str) -> None:
    """The PostgreSQL database lives for the whole session; start each test with empty tables."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            present = set(inspect(conn).get_table_names())
            names = [t.name for t in Base.metadata.sorted_tables if t.name in present]
            if names:
                conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(store_url: str, clock: FakeClock) -> Iterator[Store]:
    with Store(store_url, clock=clock) as s:
        yield s


def build_result(name: str = "sma_cross", params: dict[str, Any] | None = None, *, n_trades: int = 3,
                 n_open: int = 0, n_bars: int = 48, sharpe: float | None = 1.25,
                 return_pct: float | None = 4.5, run_id: str | None = None,
                 extra_metrics: dict[str, Any] | None = None) -> BacktestResult:
    """A small hand-made result: hourly bars, trades at odd microseconds, a rising equity curve."""
    start = pd.Timestamp("2024-03-01 00:00", tz="UTC")
    times = pd.date_range(start, periods=n_bars, freq="h")
    equity = pd.DataFrame(
        {"equity": [10_000.0 + 12.5 * i + (i % 5) * 0.1 for i in range(n_bars)],
         "cash": [10_000.0 - 100.0 * (i % 3) for i in range(n_bars)]},
        index=times)
    equity["drawdown_pct"] = (equity["equity"] / equity["equity"].cummax() - 1.0) * 100.0

    def trades(n: int, first: int, is_open: bool) -> pd.DataFrame:
        rows = []
        for k in range(first, first + n):
            entry_bar, exit_bar = 2 * k, 2 * k + 1
            entry_price, exit_price = 100.0 + k, 101.5 + k * 1.01
            size = 10.0 if k % 2 == 0 else -5.0
            commission = 0.25 * (k + 1)
            rows.append({
                "instrument": "EURUSD" if k % 2 == 0 else "GBPUSD",
                "size": size,
                "entry_bar": entry_bar,
                "exit_bar": None if is_open else exit_bar,
                "entry_time": times[entry_bar] + pd.Timedelta(microseconds=123_457 * (k + 1)),
                "exit_time": pd.NaT if is_open else times[exit_bar] + pd.Timedelta(microseconds=7 * k + 1),
                "entry_price": entry_price,
                "exit_price": math.nan if is_open else exit_price,
                "pnl": math.nan if is_open else size * (exit_price - entry_price) - commission,
                "return_pct": math.nan if is_open else (exit_price / entry_price - 1.0) * 100.0,
                "commission": commission,
                "tag": f"t{k}" if k % 3 == 0 else None,
                "exit_reason": None if is_open else ("sl" if k % 2 else "signal"),
            })
        df = pd.DataFrame(rows, columns=list(TRADE_COLUMNS))
        for col in ("entry_time", "exit_time"):  # an all-NaT column would otherwise be tz-naive
            df[col] = pd.to_datetime(df[col], utc=True)
        return df

    metrics: dict[str, Any] = {"final_equity": float(equity["equity"].iloc[-1]),
                               "n_trades": float(n_trades), "max_drawdown_pct": -0.4,
                               "win_rate_pct": 66.66666666666667}
    if sharpe is not None:
        metrics["sharpe"] = sharpe
    if return_pct is not None:
        metrics["return_pct"] = return_pct
    metrics.update(extra_metrics or {})
    return BacktestResult(
        spec=StrategySpec(name, {"fast": 10, "slow": 30} if params is None else params),
        instruments=["EURUSD", "GBPUSD"], start=times[0], end=times[-1], n_bars=n_bars,
        initial_cash=10_000.0, metrics=metrics, trades=trades(n_trades, 0, False), equity=equity,
        fingerprint=f"fp-{name}-{n_trades}", open_trades=trades(n_open, n_trades, True),
        n_orders=2 * n_trades + n_open, n_fills=2 * n_trades + n_open, data_source="tests/fixtures/market",
        run_id=run_id, settings={"commission": 0.0, "spread": 0.0001})


@pytest.fixture
def make_result() -> Callable[..., BacktestResult]:
    return build_result


@pytest.fixture
def count_rows() -> Callable[[Store, str], int]:
    def count(store: Store, table: str) -> int:
        with store.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
    return count
