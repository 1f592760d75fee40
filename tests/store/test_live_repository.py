"""Live runs in the store: decisions with factors, orders, fills and the explain chain, on SQLite and
PostgreSQL. P&L is checked against sums worked out by hand; failures are real database refusals."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from alphaloop.core.decisions import Decision, Factor
from alphaloop.core.errors import StoreError
from alphaloop.core.orders import Fill, Order, OrderStatus
from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.store import DECISION_COLUMNS, LiveRepository, Store, fill_row, order_row
from alphaloop.store.migrate import downgrade, upgrade
from alphaloop.store.models import Base

RUN = "live_r1"
T0 = pd.Timestamp("2025-03-03 10:00:00.123456", tz="UTC")
LIVE_TABLES = ("live_runs", "decisions", "orders", "fills")


def at(minutes: int) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=minutes)


def decision(n: int = 0, *, action: str = "buy", score: float = 0.62, order_id: str | None = "1",
             instrument: str = "EURUSD", minute: int = 0) -> Decision:
    factors = (
        Factor("trend", 0.8, 0.3, 0.4, detail={"ema_fast": 1.1012, "ema_slow": 1.0998}),
        Factor("ml", 0.5, 0.4, 0.6, detail={"prediction": 0.0031, "confidence": 0.7, "window": [1.0, math.nan]}),
        Factor("sentiment", 0.0, 0.3, 0.0, True, "timeout"),
        Factor("volatility", 1.0, 0.0, 0.0, True, "warm-up", detail={"atr": math.nan, "damper": 1.0}),
    )
    return Decision(
        id=f"mf:{instrument}:{100 + n}:{n}", strategy="ml_multifactor", instrument=instrument,
        time_ns=at(minute).value, bar=100 + n, score=score, threshold=0.3, action=action,
        reason="volatility target" if action != "hold" else "|score| below threshold", factors=factors,
        signal={"pattern": "ema_cross", "direction": "long", "strength": 0.9, "features": {"gap": 0.001}},
        model="eurusd_lgbm", model_version=3, inference_path="onnx_cpu", sentiment_source="news_rss",
        target_position=10.0, order_size=10.0 if action != "hold" else None, risk_rule=None,
        order_id=order_id if action != "hold" else None, latency_us=412.5)


def order(n: int, size: float, *, instrument: str = "EURUSD", minute: int = 0, **kw: Any) -> Order:
    return Order(id=n, instrument=instrument, size=size, created_bar=100 + minute, created_ns=at(minute).value, **kw)


def fill(n: int, size: float, price: float, minute: int, *, commission: float = 0.0,
         instrument: str = "EURUSD") -> Fill:
    return Fill(order_id=n, instrument=instrument, bar=100 + minute, time_ns=at(minute).value, size=size,
                price=price, commission=commission)


@pytest.fixture
def repo(store: Store) -> LiveRepository:
    live = LiveRepository(store)
    live.start_run(RUN, "replay", ["EURUSD", "GBPUSD"], StrategySpec("ml_multifactor", {"threshold": 0.3}),
                   {"cash": 10_000.0, "latency_ms": math.nan})
    return live


def counts(store: Store, count_rows) -> dict[str, int]:
    return {t: count_rows(store, t) for t in LIVE_TABLES}


# ---------------------------------------------------------------------- runs


def test_run_lifecycle(repo: LiveRepository, clock) -> None:
    run = repo.run(RUN)
    assert run["status"] == "running" and run["mode"] == "replay" and run["ended_at"] is None
    assert run["instruments"] == ["EURUSD", "GBPUSD"]
    assert run["spec"] == {"name": "ml_multifactor", "params": {"threshold": 0.3}}
    assert run["settings"] == {"cash": 10_000.0, "latency_ms": None}  # NaN stored as null
    assert run["summary"] is None and str(run["started_at"].tz) == "UTC"
    assert (run["n_decisions"], run["n_orders"], run["n_fills"]) == (0, 0, 0)

    repo.start_run("live_r2", "synthetic", ["BTCUSD"], [{"name": "a"}, StrategySpec("b", {"k": 1})])
    assert [r["id"] for r in repo.runs()] == ["live_r2", RUN]  # newest first
    assert repo.runs(limit=1)[0]["spec"] == [{"name": "a"}, {"name": "b", "params": {"k": 1}}]

    repo.finish_run(RUN, {"pnl": 12.5, "sharpe": math.nan, "n_orders": 3})
    done = repo.run(RUN)
    assert done["status"] == "finished" and done["summary"] == {"pnl": 12.5, "sharpe": None, "n_orders": 3}
    assert done["ended_at"] == pd.Timestamp(clock.now)
    repo.finish_run("live_r2", {"error": "feed lost"}, status="failed")
    assert repo.run("live_r2")["status"] == "failed"


def test_run_errors(repo: LiveRepository) -> None:
    with pytest.raises(StoreError, match="live run id 'live_r1' already exists"):
        repo.start_run(RUN, "live", ["EURUSD"], {})
    with pytest.raises(ValueError, match="mode 'paper'"):
        repo.start_run("x", "paper", ["EURUSD"], {})
    with pytest.raises(StoreError, match="unknown live run id 'nope'"):
        repo.run("nope")
    with pytest.raises(StoreError, match="unknown live run id 'nope'"):
        repo.finish_run("nope", {})
    with pytest.raises(ValueError, match="status 'running'"):
        repo.finish_run(RUN, {}, status="running")


# ---------------------------------------------------------------------- decisions


def test_decision_round_trip(repo: LiveRepository, clock) -> None:
    d = decision(0, action="hold", score=math.nan)
    assert repo.record_decision(d, run_id=RUN) is True
    [got] = repo.decisions(RUN)
    assert list(got) == list(DECISION_COLUMNS)
    want = d.to_dict()
    for key in ("id", "strategy", "instrument", "time_ns", "bar", "threshold", "action", "reason", "signal", "model",
                "model_version", "inference_path", "sentiment_source", "target_position", "order_size",
                "risk_rule", "order_id", "latency_us"):
        assert got[key] == want[key], key
    assert got["score"] is None  # NaN stored as NULL
    assert got["time"] == at(0) and str(got["time"].tz) == "UTC"
    assert got["created_at"] == pd.Timestamp(clock.now) and got["run_id"] == RUN
    assert got["factors"] == [
        {"name": "trend", "value": 0.8, "weight": 0.3, "effective_weight": 0.4, "missing": False, "reason": None,
         "detail": {"ema_fast": 1.1012, "ema_slow": 1.0998}},
        {"name": "ml", "value": 0.5, "weight": 0.4, "effective_weight": 0.6, "missing": False, "reason": None,
         "detail": {"prediction": 0.0031, "confidence": 0.7, "window": [1.0, None]}},
        {"name": "sentiment", "value": 0.0, "weight": 0.3, "effective_weight": 0.0, "missing": True,
         "reason": "timeout", "detail": {}},
        {"name": "volatility", "value": 1.0, "weight": 0.0, "effective_weight": 0.0, "missing": True,
         "reason": "warm-up", "detail": {"atr": None, "damper": 1.0}},
    ]
    assert repo.decision(RUN, d.id) == got
    # The dict form (what travels over a bus) is accepted too and stores the same row.
    repo.start_run("live_r2", "replay", ["EURUSD"], {})
    assert repo.record_decision(d.to_dict(), run_id="live_r2") is True
    assert {k: v for k, v in repo.decision("live_r2", d.id).items() if k not in ("run_id", "created_at")} == \
        {k: v for k, v in got.items() if k not in ("run_id", "created_at")}


def test_decision_listing(repo: LiveRepository) -> None:
    for n, minute in ((0, 2), (1, 0), (2, 1)):
        repo.record_decision(decision(n, action="hold", minute=minute), run_id=RUN)
    repo.start_run("live_r2", "replay", ["EURUSD"], {})
    repo.record_decision(decision(9, action="hold", minute=5), run_id="live_r2")
    assert [d["bar"] for d in repo.decisions(RUN)] == [101, 102, 100]  # time order
    assert [d["bar"] for d in repo.decisions(RUN, limit=2)] == [102, 100]  # the latest two
    assert [d["bar"] for d in repo.decisions()] == [101, 102, 100, 109]
    frame = repo.decisions_frame(RUN)
    assert list(frame.columns) == list(DECISION_COLUMNS) and len(frame) == 3
    assert str(frame["time"].dt.tz) == "UTC" and frame["score"].dtype == "float64"
    assert repo.decisions("live_unknown") == [] and repo.decisions_frame("live_unknown").empty


def test_decision_with_order_links_both_ways(repo: LiveRepository) -> None:
    d = decision(0)  # Decision.order_id is the broker's local "1"
    assert repo.record_decision(d, order_row(order(1, 10.0, sl=1.09), RUN), run_id=RUN) is True
    assert repo.order_exists(f"{RUN}:1")
    assert repo.decision(RUN, d.id)["order_id"] == f"{RUN}:1"
    [o] = repo.orders(RUN)
    assert o["decision_id"] == d.id and o["status"] == "pending" and o["type"] == "market"
    assert (o["size"], o["fraction"], o["sl"], o["tp"], o["limit"], o["tif"]) == (10.0, None, 1.09, None, None, "gtc")
    assert o["created_time"] == at(0) and o["created_bar"] == 100


def test_decision_is_idempotent(repo: LiveRepository, store: Store, count_rows) -> None:
    d = decision(0)
    assert repo.record_decision(d, order_row(order(1, 10.0), RUN), run_id=RUN) is True
    before = counts(store, count_rows)
    # Redelivered, even with a different order attached: ignored whole.
    assert repo.record_decision(d, order_row(order(2, 5.0), RUN), run_id=RUN) is False
    assert repo.record_decision(d, run_id=RUN) is False
    assert counts(store, count_rows) == before
    assert not repo.order_exists(f"{RUN}:2")
    # Decision ids are per run: the same id in another run is another decision.
    repo.start_run("live_r2", "replay", ["EURUSD"], {})
    assert repo.record_decision(d, order_row(order(1, 10.0), "live_r2"), run_id="live_r2") is True
    assert repo.run("live_r2")["n_decisions"] == 1 and repo.run(RUN)["n_decisions"] == 1


# ---------------------------------------------------------------------- orders and fills


def test_record_order_refuses_duplicates_quietly(repo: LiveRepository) -> None:
    oid = f"{RUN}:7"
    assert repo.order_exists(oid) is False
    assert repo.record_order(order_row(order(7, -3.0, limit=1.2, tif="day"), RUN)) is True
    assert repo.order_exists(oid) is True
    assert repo.record_order(order_row(order(7, 99.0), RUN)) is False  # the broker's duplicate check
    [o] = repo.orders(RUN)
    assert (o["id"], o["size"], o["type"], o["tif"], o["decision_id"]) == (oid, -3.0, "limit", "day", None)


def test_record_order_names_its_decision(repo: LiveRepository) -> None:
    d = decision(0, order_id=None)
    repo.record_decision(d, run_id=RUN)
    assert repo.record_order(order_row(order(1, 10.0), RUN, decision_id=d.id)) is True
    assert repo.decision(RUN, d.id)["order_id"] == f"{RUN}:1"
    assert repo.explain(f"{RUN}:1")["decision"]["id"] == d.id


def test_fill_updates_order_status_and_is_idempotent(repo: LiveRepository, store: Store, count_rows) -> None:
    oid = f"{RUN}:1"
    repo.record_decision(decision(0), order_row(order(1, 10.0), RUN), run_id=RUN)
    assert repo.record_fill(fill_row(fill(1, 6.0, 100.0, 1), RUN), "partially_filled") is True
    assert repo.orders(RUN)[0]["status"] == "partially_filled"
    assert repo.record_fill(fill_row(fill(1, 4.0, 101.0, 2), RUN), OrderStatus.FILLED) is True
    before = counts(store, count_rows)
    # Redelivery of the first fill: ignored, and its older status does not reopen the order.
    assert repo.record_fill(fill_row(fill(1, 6.0, 100.0, 1), RUN), "partially_filled") is False
    assert counts(store, count_rows) == before
    assert repo.orders(RUN)[0]["status"] == "filled"
    fills = repo.fills(RUN)
    assert [(f["id"], f["size"], f["price"]) for f in fills] == [
        (f"{oid}@{at(1).value}", 6.0, 100.0), (f"{oid}@{at(2).value}", 4.0, 101.0)]
    assert fills[0]["time"] == at(1) and str(fills[0]["time"].tz) == "UTC" and fills[0]["order_id"] == oid


def test_update_order_moves_forward_only(repo: LiveRepository) -> None:
    oid = f"{RUN}:1"
    repo.record_order(order_row(order(1, 10.0), RUN))
    assert repo.update_order(oid, "pending") is False
    assert repo.update_order(oid, "cancelled", "expired at session end") is True
    assert repo.update_order(oid, "pending") is False and repo.update_order(oid, "filled") is False
    [o] = repo.orders(RUN)
    assert (o["status"], o["reason"]) == ("cancelled", "expired at session end")
    with pytest.raises(StoreError, match="unknown order id 'live_r1:99'"):
        repo.update_order(f"{RUN}:99", "cancelled")
    with pytest.raises(ValueError, match="status 'done'"):
        repo.update_order(oid, "done")


def test_malformed_rows_are_refused_before_writing(repo: LiveRepository, store: Store, count_rows) -> None:
    before = counts(store, count_rows)
    with pytest.raises(StoreError, match=r"unknown field\(s\) 'limit_price'"):
        repo.record_order({**order_row(order(1, 1.0), RUN), "limit_price": 1.2})
    with pytest.raises(StoreError, match="field 'instrument' is missing"):
        repo.record_order({k: v for k, v in order_row(order(1, 1.0), RUN).items() if k != "instrument"})
    with pytest.raises(StoreError, match="tif 'forever'"):
        repo.record_order({**order_row(order(1, 1.0), RUN), "tif": "forever"})
    with pytest.raises(StoreError, match="action 'short'"):
        repo.record_decision({**decision(0).to_dict(), "action": "short"}, run_id=RUN)
    with pytest.raises(StoreError, match="field 'price' is missing"):
        repo.record_fill({k: v for k, v in fill_row(fill(1, 1.0, 1.0, 0), RUN).items() if k != "price"})
    assert counts(store, count_rows) == before


# ---------------------------------------------------------------------- atomicity (real database refusals)


def test_decision_with_a_taken_order_id_leaves_nothing(repo: LiveRepository, store: Store, count_rows) -> None:
    repo.record_decision(decision(0), order_row(order(1, 10.0), RUN), run_id=RUN)
    before = counts(store, count_rows)
    clash = decision(1)
    with pytest.raises(StoreError, match=f"cannot record decision '{clash.id}'"):
        repo.record_decision(clash, order_row(order(1, -4.0), RUN), run_id=RUN)  # primary key of orders
    assert counts(store, count_rows) == before
    with pytest.raises(StoreError, match="unknown decision id"):
        repo.decision(RUN, clash.id)
    # Nothing half-written blocks the retry with a fresh order id.
    assert repo.record_decision(clash, order_row(order(2, -4.0), RUN), run_id=RUN) is True


def test_fill_of_a_missing_order_leaves_nothing(repo: LiveRepository, store: Store, count_rows) -> None:
    repo.record_order(order_row(order(1, 10.0), RUN))
    before = counts(store, count_rows)
    with pytest.raises(StoreError, match="cannot record fill"):
        repo.record_fill(fill_row(fill(42, 1.0, 100.0, 1), RUN), "filled")  # foreign key
    # An order of another run is refused too: the key of a fill's order includes the run.
    repo.start_run("live_r2", "replay", ["EURUSD"], {})
    before["live_runs"] += 1
    with pytest.raises(StoreError, match="cannot record fill"):
        repo.record_fill(fill_row(fill(1, 1.0, 100.0, 1), "live_r2", order_id=f"{RUN}:1"), "filled")
    assert counts(store, count_rows) == before
    assert repo.orders(RUN)[0]["status"] == "pending"


def test_rows_of_an_unknown_run_are_refused(repo: LiveRepository, store: Store, count_rows) -> None:
    with pytest.raises(StoreError, match="cannot record decision"):
        repo.record_decision(decision(0), order_row(order(1, 1.0), "live_nope"), run_id="live_nope")
    with pytest.raises(StoreError, match="cannot record order"):
        repo.record_order(order_row(order(1, 1.0), "live_nope"))
    with pytest.raises(StoreError, match="cannot record order"):  # a decision that was never recorded
        repo.record_order(order_row(order(1, 1.0), RUN, decision_id="mf:EURUSD:1:1"))
    assert counts(store, count_rows) == {"live_runs": 1, "decisions": 0, "orders": 0, "fills": 0}


# ---------------------------------------------------------------------- explain


def trade_sequence(repo: LiveRepository) -> dict[str, str]:
    """Buy 10 in two fills, close with an SL child order, go short 5, then buy 8 (closes 5, opens 3);
    a GBPUSD order in between must not enter EURUSD's P&L."""
    ids = {k: f"{RUN}:{n}" for k, n in (("entry", 1), ("sl", 2), ("gbp", 3), ("short", 4), ("flip", 5))}
    repo.record_decision(decision(0), order_row(order(1, 10.0, sl=99.0), RUN), run_id=RUN)
    repo.record_fill(fill_row(fill(1, 6.0, 100.0, 1, commission=0.6), RUN), "partially_filled")
    repo.record_fill(fill_row(fill(1, 4.0, 101.0, 2, commission=0.4), RUN), "filled")
    repo.record_order(order_row(order(2, -10.0, minute=2, stop=99.0, parent_trade=0), RUN))
    repo.record_decision(decision(1, instrument="GBPUSD", order_id="3", minute=3),
                         order_row(order(3, 5.0, instrument="GBPUSD", minute=3), RUN), run_id=RUN)
    repo.record_fill(fill_row(fill(3, 5.0, 1.25, 4, instrument="GBPUSD"), RUN), "filled")
    repo.record_fill(fill_row(fill(2, -10.0, 103.0, 5, commission=1.0), RUN), "filled")
    repo.record_decision(decision(2, action="sell", order_id="4", minute=6),
                         order_row(order(4, -5.0, minute=6), RUN), run_id=RUN)
    repo.record_fill(fill_row(fill(4, -5.0, 104.0, 7, commission=0.5), RUN), "filled")
    repo.record_decision(decision(3, order_id="5", minute=8), order_row(order(5, 8.0, minute=8), RUN), run_id=RUN)
    repo.record_fill(fill_row(fill(5, 8.0, 102.0, 9, commission=0.8), RUN), "filled")
    return ids


def test_explain_walks_from_decision_to_fills(repo: LiveRepository) -> None:
    ids = trade_sequence(repo)
    chain = repo.explain(ids["entry"])
    assert chain["run"]["id"] == RUN and chain["run"]["n_fills"] == 6
    d = chain["decision"]
    assert (d["id"], d["bar"], d["time"], d["score"], d["threshold"], d["action"]) == (
        "mf:EURUSD:100:0", 100, at(0), 0.62, 0.3, "buy")
    assert (d["model"], d["model_version"], d["inference_path"], d["sentiment_source"]) == (
        "eurusd_lgbm", 3, "onnx_cpu", "news_rss")
    assert d["signal"]["pattern"] == "ema_cross"
    ml = next(f for f in d["factors"] if f["name"] == "ml")
    assert (ml["value"], ml["weight"], ml["effective_weight"], ml["missing"]) == (0.5, 0.4, 0.6, False)
    assert ml["detail"]["prediction"] == 0.0031
    assert next(f for f in d["factors"] if f["name"] == "sentiment")["reason"] == "timeout"
    assert chain["order"]["id"] == ids["entry"] and chain["order"]["status"] == "filled"
    assert [(f["size"], f["price"], f["time"]) for f in chain["fills"]] == [(6.0, 100.0, at(1)), (4.0, 101.0, at(2))]
    # Entry lots 6 @ 100 and 4 @ 101, closed by the SL fill at 103: 6*3 + 4*2 = 26, less 1.0 commission.
    assert chain["filled_size"] == 10.0 and chain["avg_fill_price"] == pytest.approx(100.4)
    assert chain["commission"] == pytest.approx(1.0) and chain["closed_size"] == 10.0 and chain["open_size"] == 0.0
    assert chain["realized_pnl"] == pytest.approx(25.0)


def test_explain_orders_without_a_decision_and_flips(repo: LiveRepository) -> None:
    ids = trade_sequence(repo)
    sl = repo.explain(ids["sl"])
    assert sl["decision"] is None and sl["order"]["type"] == "stop" and sl["order"]["parent_trade"] == 0
    assert sl["realized_pnl"] == pytest.approx(26.0 - 1.0) and sl["open_size"] == 0.0
    # Short 5 @ 104 is closed by the buy of 8 @ 102: 5 * 2 = 10; 3 stay open long.
    flip = repo.explain(ids["flip"])
    assert flip["closed_size"] == 5.0 and flip["open_size"] == pytest.approx(3.0)
    assert flip["realized_pnl"] == pytest.approx(10.0 - 0.8)
    short = repo.explain(ids["short"])
    assert short["realized_pnl"] == pytest.approx(10.0 - 0.5) and short["open_size"] == 0.0
    gbp = repo.explain(ids["gbp"])
    assert gbp["decision"]["instrument"] == "GBPUSD"
    assert gbp["realized_pnl"] == 0.0 and gbp["open_size"] == 5.0 and gbp["closed_size"] == 0.0


def test_explain_before_and_without_fills(repo: LiveRepository) -> None:
    repo.record_decision(decision(0), order_row(order(1, 10.0), RUN), run_id=RUN)
    pending = repo.explain(f"{RUN}:1")
    assert pending["fills"] == [] and pending["realized_pnl"] is None and pending["avg_fill_price"] is None
    repo.record_fill(fill_row(fill(1, 10.0, 100.0, 1, commission=0.25), RUN), "filled")
    opened = repo.explain(f"{RUN}:1")  # open, nothing closed yet: only the commission is realised
    assert opened["realized_pnl"] == pytest.approx(-0.25) and opened["open_size"] == 10.0
    with pytest.raises(StoreError, match="unknown order id 'live_r1:404'"):
        repo.explain(f"{RUN}:404")


# ---------------------------------------------------------------------- schema


def test_live_tables_migrate_down_and_up(store: Store) -> None:
    downgrade(store.engine, "0002")
    tables = set(inspect(store.engine).get_table_names())
    assert not tables & set(LIVE_TABLES) and "model_versions" in tables
    upgrade(store.engine)
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        assert compare_metadata(ctx, Base.metadata) == []
    live = LiveRepository(store)
    live.start_run(RUN, "live", ["EURUSD"], {})
    assert live.run(RUN)["mode"] == "live"
