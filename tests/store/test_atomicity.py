"""A save that fails part-way leaves nothing: no run, no trades, no equity, no new strategy.

Each failure is a real one raised by the database (constraint or trigger), not a mock.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from alphaloop.core.errors import StoreError
from alphaloop.store import Store

TABLES = ("strategies", "strategy_events", "backtest_runs", "backtest_trades", "equity_curves")


def counts(store: Store, count_rows) -> dict[str, int]:
    return {t: count_rows(store, t) for t in TABLES}


def test_duplicate_run_id_rolls_back_the_new_strategy(store: Store, make_result, count_rows) -> None:
    first = make_result("sma_cross", n_trades=3, run_id="run_dup")
    store.save_backtest(first)
    before = counts(store, count_rows)

    # A new spec, so the save inserts a strategy row (and its event) before the run insert fails.
    clash = make_result("rsi_revert", {"period": 14}, n_trades=7, run_id="run_dup")
    with pytest.raises(StoreError, match="cannot save run run_dup") as err:
        store.save_backtest(clash)
    assert "\n" not in str(err.value)

    assert counts(store, count_rows) == before
    with pytest.raises(StoreError):
        store.get_strategy(spec=clash.spec)
    kept = store.get_run("run_dup")  # the first run is untouched
    assert kept.spec == first.spec and len(kept.trades) == 3


def test_constraint_violation_in_trades_leaves_nothing(store: Store, make_result, count_rows) -> None:
    result = make_result("macd", n_trades=5)
    result.trades.loc[3, "instrument"] = None  # NOT NULL violation, raised by the database
    with pytest.raises(StoreError, match="cannot save run"):
        store.save_backtest(result)
    assert result.run_id is None
    assert counts(store, count_rows) == dict.fromkeys(TABLES, 0)

    # The store is still usable after the rollback.
    good = make_result("macd", n_trades=5)
    store.save_backtest(good)
    assert len(store.get_run(good.run_id).trades) == 5


@pytest.fixture
def equity_insert_fails(store: Store) -> Iterator[None]:
    """A trigger that makes the database reject the last insert of a save (the equity curve)."""
    with store.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text("CREATE TRIGGER refuse_equity BEFORE INSERT ON equity_curves "
                              "BEGIN SELECT RAISE(ABORT, 'equity refused'); END"))
        else:
            conn.execute(text("CREATE FUNCTION refuse_equity() RETURNS trigger LANGUAGE plpgsql AS "
                              "$$ BEGIN RAISE EXCEPTION 'equity refused'; END $$"))
            conn.execute(text("CREATE TRIGGER refuse_equity BEFORE INSERT ON equity_curves "
                              "FOR EACH ROW EXECUTE FUNCTION refuse_equity()"))
    try:
        yield
    finally:
        with store.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.execute(text("DROP TRIGGER refuse_equity"))
            else:
                conn.execute(text("DROP TRIGGER refuse_equity ON equity_curves"))
                conn.execute(text("DROP FUNCTION refuse_equity()"))


def test_failure_after_trades_insert_leaves_nothing(store: Store, make_result, count_rows,
                                                    equity_insert_fails) -> None:
    result = make_result("bollinger", n_trades=4, n_open=1)
    with pytest.raises(StoreError, match="equity refused"):
        store.save_backtest(result)
    assert result.run_id is None
    assert counts(store, count_rows) == dict.fromkeys(TABLES, 0)
