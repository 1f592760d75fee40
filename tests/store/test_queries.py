"""The discovery loop's queries: ordering, filters, NULL handling and idempotent flags."""

from __future__ import annotations

import pytest

from alphaloop.core.errors import StoreError
from alphaloop.store import Store


@pytest.fixture
def runs(store: Store, make_result) -> dict[str, str]:
    """Six runs saved in the order a..f (the fake clock makes a the oldest), scores set by hand.

    name  sharpe  return_pct  composite
    a     1.0     5.0         0.50
    b     2.5     -3.0        0.90
    c     None    12.0        None
    d     0.3     (derived)   0.20    no return metric: the store derives +5.88 % from final equity
    e     2.5     7.0         0.75
    f     -1.0    0.0         None
    """
    table = {"a": (1.0, 5.0, 0.50), "b": (2.5, -3.0, 0.90), "c": (None, 12.0, None),
             "d": (0.3, None, 0.20), "e": (2.5, 7.0, 0.75), "f": (-1.0, 0.0, None)}
    ids = {}
    for i, (name, (sharpe, ret, composite)) in enumerate(table.items()):
        ids[name] = store.save_backtest(make_result(f"s{name}", {"i": i}, sharpe=sharpe, return_pct=ret))
        if composite is not None:
            store.set_scores(ids[name], composite_score=composite)
    return ids


def names(rows, ids: dict[str, str]) -> list[str]:
    by_id = {v: k for k, v in ids.items()}
    return [by_id[r.run_id] for r in rows]


def test_top_performing_by_composite_nulls_last(store: Store, runs) -> None:
    assert names(store.top_performing(), runs) == ["b", "e", "a", "d", "f", "c"]  # NULL ties: newest first
    assert names(store.top_performing(limit=2), runs) == ["b", "e"]


def test_top_performing_by_sharpe_and_return(store: Store, runs) -> None:
    # b and e tie on Sharpe 2.5: the newer (e) first.
    assert names(store.top_performing(metric="sharpe"), runs) == ["e", "b", "a", "d", "f", "c"]
    top_return = names(store.top_performing(metric="return_pct"), runs)
    # d has no return metric, so the store derived one from its final equity (about +5.88 %).
    assert top_return == ["c", "e", "d", "a", "f", "b"]


def test_top_performing_rejects_unknown_metric(store: Store) -> None:
    with pytest.raises(ValueError, match="max_drawdown_pct"):
        store.top_performing(metric="max_drawdown_pct")


def test_by_composite_range_is_inclusive_and_skips_unscored(store: Store, runs) -> None:
    assert names(store.by_composite_range(0.5, 0.9), runs) == ["b", "e", "a"]
    assert names(store.by_composite_range(0.2, 0.5), runs) == ["a", "d"]
    assert names(store.by_composite_range(0.0, 1.0, limit=1), runs) == ["b"]
    assert store.by_composite_range(0.91, 5.0) == []
    with pytest.raises(ValueError):
        store.by_composite_range(1.0, 0.0)


def test_list_runs_newest_first(store: Store, runs) -> None:
    assert names(store.list_runs(), runs) == ["f", "e", "d", "c", "b", "a"]
    assert names(store.list_runs(limit=2), runs) == ["f", "e"]
    strategy_of_c = store.list_runs(limit=10)[3].strategy_id
    assert names(store.list_runs(strategy_id=strategy_of_c), runs) == ["c"]


def test_recent_unprocessed_oldest_first_and_mark_processed(store: Store, runs, clock) -> None:
    assert names(store.recent_unprocessed(), runs) == ["a", "b", "c", "d", "e", "f"]
    assert names(store.recent_unprocessed(limit=2), runs) == ["a", "b"]

    assert store.mark_processed([runs["a"], runs["c"], runs["a"]]) == 2
    assert names(store.recent_unprocessed(), runs) == ["b", "d", "e", "f"]
    first = {r.run_id: r.feedback_submitted_at for r in store.list_runs() if r.ml_feedback_submitted}
    assert set(first) == {runs["a"], runs["c"]}
    assert all(t is not None and str(t.tz) == "UTC" for t in first.values())

    # Idempotent: marking again changes nothing, not even the time of the first submission.
    assert store.mark_processed([runs["a"], runs["c"]]) == 0
    assert store.mark_processed([runs["c"], runs["d"]]) == 1
    again = {r.run_id: r.feedback_submitted_at for r in store.list_runs() if r.ml_feedback_submitted}
    assert again[runs["a"]] == first[runs["a"]] and again[runs["c"]] == first[runs["c"]]
    assert names(store.recent_unprocessed(), runs) == ["b", "e", "f"]
    assert store.mark_processed([]) == 0


def test_mark_processed_unknown_id_marks_nothing(store: Store, runs) -> None:
    with pytest.raises(StoreError, match="run_missing"):
        store.mark_processed([runs["a"], "run_missing"])
    assert len(store.recent_unprocessed()) == 6


def test_set_scores(store: Store, runs) -> None:
    store.set_scores(runs["c"], backtest_score=0.4, ml_confidence=0.8)
    c = next(r for r in store.list_runs() if r.run_id == runs["c"])
    assert (c.backtest_score, c.ml_confidence, c.composite_score) == (0.4, 0.8, None)

    store.set_scores(runs["c"], composite_score=0.95)  # the others stay
    c = next(r for r in store.list_runs() if r.run_id == runs["c"])
    assert (c.backtest_score, c.ml_confidence, c.composite_score) == (0.4, 0.8, 0.95)
    assert names(store.top_performing(limit=1), runs) == ["c"]

    store.set_scores(runs["c"], ml_confidence=None)  # None clears
    c = next(r for r in store.list_runs() if r.run_id == runs["c"])
    assert (c.backtest_score, c.ml_confidence, c.composite_score) == (0.4, None, 0.95)

    with pytest.raises(StoreError, match="run_missing"):
        store.set_scores("run_missing", composite_score=1.0)


def test_strategy_composite_follows_its_latest_scored_run(store: Store, make_result) -> None:
    older = store.save_backtest(make_result("x", {"p": 1}))
    newer = store.save_backtest(make_result("x", {"p": 1}))
    sid = store.list_runs(1)[0].strategy_id
    store.set_scores(newer, composite_score=0.3)
    store.set_scores(older, composite_score=0.9)  # re-scoring an older run does not win
    assert store.get_strategy(sid).composite_score == 0.3
    store.set_scores(newer, composite_score=None)
    assert store.get_strategy(sid).composite_score == 0.9
