"""Strategy rows: lookup, listing, and a status history written with every change."""

from __future__ import annotations

import pytest

from alphaloop.core.errors import StoreError
from alphaloop.store import Store


def test_status_changes_write_events(store: Store, make_result, count_rows) -> None:
    run_id = store.save_backtest(make_result())
    sid = store.list_runs(1)[0].strategy_id

    created = store.strategy_events(sid)
    assert [(e.from_status, e.to_status) for e in created] == [(None, "candidate")]
    assert run_id in created[0].reason

    assert store.set_strategy_status(sid, "active", "composite 0.82 >= 0.7") is True
    assert store.set_strategy_status(sid, "active", "again") is False  # no change, no event
    assert store.set_strategy_status(sid, "inactive", "drawdown limit hit") is True

    events = store.strategy_events(sid)
    assert [(e.from_status, e.to_status, e.reason) for e in events[1:]] == [
        ("candidate", "active", "composite 0.82 >= 0.7"), ("active", "inactive", "drawdown limit hit")]
    assert all(str(e.created_at.tz) == "UTC" for e in events)
    assert [e.created_at for e in events] == sorted(e.created_at for e in events)

    s = store.get_strategy(sid)
    assert s.status == "inactive" and s.updated_at == events[-1].created_at
    assert count_rows(store, "strategy_events") == 3


def test_status_is_validated(store: Store, make_result, count_rows) -> None:
    store.save_backtest(make_result())
    sid = store.list_runs(1)[0].strategy_id
    with pytest.raises(ValueError, match="retired"):
        store.set_strategy_status(sid, "retired", "no such status")
    with pytest.raises(StoreError, match="strat_missing"):
        store.set_strategy_status("strat_missing", "active", "x")
    assert count_rows(store, "strategy_events") == 1


def test_get_strategy_by_id_spec_or_key(store: Store, make_result) -> None:
    result = make_result("ema_cross", {"fast": 8})
    store.save_backtest(result)
    by_spec = store.get_strategy(spec=result.spec)
    assert by_spec == store.get_strategy(by_spec.id) == store.get_strategy(spec_key=result.spec.key)
    assert by_spec.spec == result.spec
    with pytest.raises(StoreError, match="strat_missing"):
        store.get_strategy("strat_missing")
    with pytest.raises(StoreError, match="unknown strategy"):
        store.get_strategy(spec=make_result("other").spec)
    with pytest.raises(ValueError):
        store.get_strategy()


def test_list_strategies_filters_and_orders(store: Store, make_result) -> None:
    ids = {}
    for name, composite in (("a", 0.2), ("b", None), ("c", 0.9), ("d", 0.5)):
        run_id = store.save_backtest(make_result(name))
        if composite is not None:
            store.set_scores(run_id, composite_score=composite)
        ids[name] = store.get_strategy(spec=make_result(name).spec).id
    store.set_strategy_status(ids["a"], "active", "r")
    store.set_strategy_status(ids["c"], "active", "r")
    store.set_strategy_status(ids["d"], "inactive", "r")

    by_id = {v: k for k, v in ids.items()}
    assert [by_id[s.id] for s in store.list_strategies()] == ["c", "d", "a", "b"]  # best first, unscored last
    assert [by_id[s.id] for s in store.list_strategies("active")] == ["c", "a"]
    assert [by_id[s.id] for s in store.list_strategies(status="candidate")] == ["b"]
    with pytest.raises(ValueError):
        store.list_strategies("bogus")
