"""Live runs: every decision with its factor breakdown, every order linked to its decision, every
fill to its order, so ``explain(order_id)`` can walk the chain from bar to fill.

Consistency after a crash: a decision and the order it made are written in one transaction, and so
are a fill and the order status change it causes.

Idempotency (delivery between engines is at least once), by row:

- decision, key (run_id, id): a second write of the same key is **ignored** (``record_decision``
  returns False and writes nothing, not even an order passed along; the first delivery wrote it).
  A *new* decision whose order id already exists is a bug, not a redelivery: refused (StoreError).
- order, key ``id`` (global, ``<run_id>:<n>``): ``record_order`` returns False on a duplicate id
  and ``order_exists`` lets the broker check before acting.
- fill, key ``id``: a duplicate is ignored (False) together with its status change.
- order status only moves forward (pending -> partially_filled -> a final status); a late,
  redelivered older status is ignored, so redelivery can never reopen a filled order.

Times come back as UTC ``pd.Timestamp`` (microseconds, what both databases keep); NaN floats are
stored as NULL and come back as None.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.orm import Session

from alphaloop.core.decisions import Decision
from alphaloop.core.errors import StoreError
from alphaloop.core.orders import Fill, Order, OrderStatus, OrderType, TimeInForce
from alphaloop.store import codec
from alphaloop.store.models import (
    DECISION_ACTIONS,
    LIVE_MODES,
    DecisionRecord,
    FillRecord,
    LiveRun,
    OrderRecord,
)
from alphaloop.store.repository import Store

DECISION_COLUMNS = ("run_id", "id", "strategy", "instrument", "time", "time_ns", "bar", "score", "threshold",
                    "action", "reason", "factors", "signal", "model", "model_version", "inference_path",
                    "sentiment_source", "target_position", "order_size", "risk_rule", "order_id", "latency_us",
                    "created_at")

# Forward-only order lifecycle: a status may only be replaced by one of higher rank.
_STATUS_RANK = {OrderStatus.PENDING.value: 0, OrderStatus.PARTIALLY_FILLED.value: 1,
                **{s.value: 2 for s in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED,
                                        OrderStatus.REJECTED)}}
_ORDER_FIELDS = frozenset({"id", "run_id", "decision_id", "instrument", "size", "fraction", "close_position",
                           "type", "limit", "stop", "sl", "tp", "tif", "expires_at", "tag", "parent_trade",
                           "status", "reason", "created_bar", "created_time", "created_ns"})
_FILL_FIELDS = frozenset({"id", "order_id", "run_id", "instrument", "bar", "time", "time_ns", "size", "price",
                          "commission"})
_DECISION_FIELDS = frozenset(f.name for f in dataclasses.fields(Decision))
_EPS = 1e-12  # relative size below which a FIFO lot counts as closed (float residue of partial closes)


class LiveRepository:
    """Live runs, decisions, orders and fills in ``store``'s database (``Store`` migrates it).

    Every method is one transaction; failures surface as StoreError and leave nothing of the
    transaction behind. Bad arguments (an unknown mode or status) raise ValueError.
    """

    def __init__(self, store: Store):
        self.store = store

    # ------------------------------------------------------------------ runs

    def start_run(self, run_id: str, mode: str, instruments: Iterable[str], spec: Any,
                  settings: Mapping[str, Any] | Any | None = None) -> None:
        """Record a new run as ``running``. ``spec`` is a StrategySpec, a mapping, or a list of them
        (several strategies in one run); ``settings`` the run's parameters (cash, costs, budgets), stored
        as given: pass no credentials (not the whole ``core.config.Settings``, whose URLs may hold
        passwords). A run id already used is refused (StoreError)."""
        if mode not in LIVE_MODES:
            raise ValueError(f"mode {mode!r} is not one of {', '.join(LIVE_MODES)}")
        values = {"id": run_id, "mode": mode, "status": "running",
                  "instruments": [str(i) for i in instruments], "spec": _plain(spec),
                  "settings": _plain(settings or {}), "summary": None}
        with self.store._session(f"cannot start live run {run_id}") as s:
            if s.get(LiveRun, run_id) is not None:
                raise StoreError(f"live run id {run_id!r} already exists")
            s.add(LiveRun(started_at=self.store._now(), ended_at=None, **values))

    def finish_run(self, run_id: str, summary: Mapping[str, Any] | None = None, status: str = "finished") -> None:
        """Mark a run ``finished`` (or ``failed``) now, with its summary (metrics, counts, error)."""
        if status not in ("finished", "failed"):
            raise ValueError(f"status {status!r} is not one of finished, failed")
        with self.store._session(f"cannot finish live run {run_id}") as s:
            run = s.get(LiveRun, run_id, with_for_update=True)
            if run is None:
                raise StoreError(f"unknown live run id {run_id!r}")
            run.status, run.summary, run.ended_at = status, _plain(summary), self.store._now()

    def run(self, run_id: str) -> dict[str, Any]:
        """One run with its counts of decisions, orders and fills."""
        with self.store._session(f"cannot read live run {run_id}") as s:
            row = s.execute(_runs_query().where(LiveRun.id == run_id)).one_or_none()
            if row is None:
                raise StoreError(f"unknown live run id {run_id!r}")
            return _run_dict(row)

    def runs(self, limit: int | None = 50) -> list[dict[str, Any]]:
        """Runs, most recently started first."""
        stmt = _runs_query().order_by(LiveRun.started_at.desc(), LiveRun.id.desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.store._session("cannot list live runs") as s:
            return [_run_dict(r) for r in s.execute(stmt)]

    # ------------------------------------------------------------------ writes

    def record_decision(self, decision: Decision | Mapping[str, Any], order: Mapping[str, Any] | None = None,
                        *, run_id: str) -> bool:
        """Store a decision (a Decision or its ``to_dict()``) and the order it made, in one transaction.

        Return False, writing nothing, when the decision (run_id, id) is already stored: a redelivery.
        ``order`` is an order row (see :meth:`record_order`, :func:`order_row`); its ``run_id``
        defaults to the decision's and its ``decision_id`` is set to the decision's id. The decision's
        ``order_id`` is stored as the order row's global id (``Decision.order_id`` may be the
        broker's local number).
        """
        raw = decision.to_dict() if isinstance(decision, Decision) else dict(decision)
        action = f"cannot record decision {raw.get('id')!r} of live run {run_id}"
        try:
            values = _decision_values(raw, run_id)
            order_values = None
            if order is not None:
                if order.get("decision_id") not in (None, values["id"]):
                    raise ValueError(f"order decision id {order['decision_id']!r} is not this decision's")
                order_values = _order_values({"run_id": run_id, **order, "decision_id": values["id"]})
                if order_values["run_id"] != run_id:
                    raise ValueError(f"order run id {order_values['run_id']!r} is not the decision's {run_id!r}")
                values["order_id"] = order_values["id"]
        except (KeyError, TypeError, ValueError) as e:
            raise StoreError(f"{action}: {e}") from e
        with self.store._session(action) as s:
            now = self.store._now()
            if not _insert_new(s, DecisionRecord.__table__, {**values, "created_at": now}, ("run_id", "id")):
                return False
            if order_values is not None:
                # A plain insert: a duplicate order id under a new decision fails and rolls both back.
                s.execute(insert(OrderRecord), [{**order_values, "updated_at": now}])
            return True

    def record_order(self, order_row: Mapping[str, Any]) -> bool:
        """Store an order (keys as :func:`order_row` gives); return False if its id is already stored.

        An order naming a ``decision_id`` also becomes that decision's ``order_id``.
        """
        action = f"cannot record order {order_row.get('id')!r}"
        try:
            values = _order_values(order_row)
        except (KeyError, TypeError, ValueError) as e:
            raise StoreError(f"{action}: {e}") from e
        with self.store._session(action) as s:
            if not _insert_new(s, OrderRecord.__table__, {**values, "updated_at": self.store._now()}, ("id",)):
                return False
            if values["decision_id"] is not None:
                s.execute(update(DecisionRecord)
                          .where(DecisionRecord.run_id == values["run_id"], DecisionRecord.id == values["decision_id"])
                          .values(order_id=values["id"]).execution_options(synchronize_session=False))
            return True

    def order_exists(self, order_id: str) -> bool:
        """Whether an order with this id is stored (the broker's duplicate-delivery check)."""
        with self.store._session(f"cannot look up order {order_id}") as s:
            return s.scalar(select(OrderRecord.id).where(OrderRecord.id == order_id)) is not None

    def record_fill(self, fill_row: Mapping[str, Any], order_status: str | None = None) -> bool:
        """Store a fill (keys as :func:`fill_row` gives) and, in the same transaction, move its order
        to ``order_status``. Return False, changing nothing, if the fill id is already stored.

        A fill whose order (in the fill's run) does not exist is refused by the database's foreign key.
        """
        action = f"cannot record fill {fill_row.get('id')!r}"
        try:
            values = _fill_values(fill_row)
            status = None if order_status is None else _enum(order_status, OrderStatus, "order_status")
        except (KeyError, TypeError, ValueError) as e:
            raise StoreError(f"{action}: {e}") from e
        with self.store._session(action) as s:
            now = self.store._now()
            if not _insert_new(s, FillRecord.__table__, {**values, "created_at": now}, ("id",)):
                return False
            # The insert passed the foreign key, so the order exists; lock it for the status change.
            order = s.get_one(OrderRecord, values["order_id"], with_for_update=True)
            if status is not None and _STATUS_RANK[status] > _STATUS_RANK[order.status]:
                order.status = status
            order.updated_at = now
            return True

    def update_order(self, order_id: str, status: str, reason: str | None = None) -> bool:
        """Move an order to ``status`` (``reason`` replaces the stored one when given).

        Return False, changing nothing, when the order is already at that status or further along
        (see the module notes); an unknown order id raises StoreError.
        """
        status = _enum(status, OrderStatus, "status")
        with self.store._session(f"cannot update order {order_id}") as s:
            order = s.get(OrderRecord, order_id, with_for_update=True)
            if order is None:
                raise StoreError(f"unknown order id {order_id!r}")
            if _STATUS_RANK[status] <= _STATUS_RANK[order.status]:
                return False
            order.status = status
            if reason is not None:
                order.reason = reason
            order.updated_at = self.store._now()
            return True

    # ------------------------------------------------------------------ reads

    def decision(self, run_id: str, decision_id: str) -> dict[str, Any]:
        """One decision (keys of ``DECISION_COLUMNS``)."""
        with self.store._session(f"cannot read decision {decision_id}") as s:
            row = s.get(DecisionRecord, (run_id, decision_id))
            if row is None:
                raise StoreError(f"unknown decision id {decision_id!r} in live run {run_id!r}")
            return _decision_dict(row)

    def decisions(self, run_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Decisions (of one run, or all) in time order; with ``limit``, the latest ``limit`` of them."""
        stmt = select(DecisionRecord)
        if run_id is not None:
            stmt = stmt.where(DecisionRecord.run_id == run_id)
        order = (DecisionRecord.time, DecisionRecord.created_at, DecisionRecord.run_id, DecisionRecord.id)
        if limit is not None:
            stmt = stmt.order_by(*(c.desc() for c in order)).limit(limit)
        else:
            stmt = stmt.order_by(*order)
        with self.store._session("cannot read decisions") as s:
            rows = [_decision_dict(r) for r in s.scalars(stmt)]
        return rows[::-1] if limit is not None else rows

    def decisions_frame(self, run_id: str | None = None, limit: int | None = None) -> pd.DataFrame:
        """:meth:`decisions` as a DataFrame, one row per decision (``factors`` stays a list per row)."""
        df = pd.DataFrame(self.decisions(run_id, limit), columns=list(DECISION_COLUMNS))
        for c in ("time", "created_at"):
            df[c] = pd.to_datetime(df[c], utc=True).dt.as_unit("us")
        for c in ("score", "threshold", "target_position", "order_size", "latency_us"):
            df[c] = df[c].astype(np.float64)
        return df

    def orders(self, run_id: str) -> list[dict[str, Any]]:
        """The run's orders in the order they were created."""
        stmt = (select(OrderRecord).where(OrderRecord.run_id == run_id)
                .order_by(OrderRecord.created_time, OrderRecord.created_bar, OrderRecord.id))
        with self.store._session(f"cannot read orders of live run {run_id}") as s:
            return [_order_dict(r) for r in s.scalars(stmt)]

    def fills(self, run_id: str) -> list[dict[str, Any]]:
        """The run's fills in time order."""
        with self.store._session(f"cannot read fills of live run {run_id}") as s:
            return [_fill_dict(r) for r in s.scalars(_fills_query(FillRecord.run_id == run_id))]

    def explain(self, order_id: str) -> dict[str, Any]:
        """Why an order exists and what came of it.

        Keys: ``run``, ``decision`` (None for orders no decision made, e.g. SL/TP children; else its
        score, threshold, action, reason, factors with value, weight, effective weight, missing,
        reason and detail, the signal, model, version, inference path, sentiment source), ``order``,
        ``fills`` (time order), ``filled_size``, ``avg_fill_price``, ``commission``, ``closed_size``,
        ``open_size`` and ``realized_pnl``.

        P&L matches the run's fills of the instrument first in, first out (the run is taken to start
        flat). ``realized_pnl`` is the gross P&L of every lot this order opened that has been closed
        since, plus that of the lots its fills closed, less this order's commissions; None while the
        order has no fill.
        """
        with self.store._session(f"cannot explain order {order_id}") as s:
            order = s.get(OrderRecord, order_id)
            if order is None:
                raise StoreError(f"unknown order id {order_id!r}")
            run = s.execute(_runs_query().where(LiveRun.id == order.run_id)).one()
            if order.decision_id is not None:
                decision = s.get(DecisionRecord, (order.run_id, order.decision_id))
            else:  # an order stored without its decision id may still be named by the decision
                decision = s.scalars(select(DecisionRecord).where(DecisionRecord.run_id == order.run_id,
                                                                  DecisionRecord.order_id == order_id)
                                     .order_by(DecisionRecord.time).limit(1)).first()
            book = [_fill_dict(f) for f in s.scalars(_fills_query(
                FillRecord.run_id == order.run_id, FillRecord.instrument == order.instrument))]
            out = {"run": _run_dict(run), "decision": None if decision is None else _decision_dict(decision),
                   "order": _order_dict(order)}
        fills = [f for f in book if f["order_id"] == order_id]
        out["fills"] = fills
        out.update(_order_pnl(order_id, fills, book))
        return out


# ---------------------------------------------------------------------- rows from domain objects


def order_row(order: Order, run_id: str, *, order_id: str | None = None,
              decision_id: str | None = None) -> dict[str, Any]:
    """The row :meth:`LiveRepository.record_order` takes for a broker ``Order``.

    ``order_id`` defaults to ``<run_id>:<order.id>``: broker numbers restart with every run.
    """
    return {
        "id": order_id or f"{run_id}:{order.id}", "run_id": run_id, "decision_id": decision_id,
        "instrument": order.instrument, "size": order.size, "fraction": order.fraction,
        "close_position": order.close_position, "type": str(order.type), "limit": order.limit,
        "stop": order.stop, "sl": order.sl, "tp": order.tp, "tif": str(order.tif),
        "expires_at": order.expires_at, "tag": order.tag, "parent_trade": order.parent_trade,
        "status": str(order.status), "reason": order.reason,
        "created_bar": order.created_bar if order.created_bar >= 0 else None, "created_ns": order.created_ns,
    }


def fill_row(fill: Fill, run_id: str, *, fill_id: str | None = None, order_id: str | None = None) -> dict[str, Any]:
    """The row :meth:`LiveRepository.record_fill` takes for a broker ``Fill``.

    ``order_id`` defaults to ``<run_id>:<fill.order_id>``; ``fill_id`` to ``<order_id>@<time_ns>``,
    derived from the fill itself so a redelivered fill gets the same id (pass an explicit one if an
    order can fill twice at the same timestamp).
    """
    oid = order_id or f"{run_id}:{fill.order_id}"
    return {"id": fill_id or f"{oid}@{fill.time_ns}", "order_id": oid, "run_id": run_id,
            "instrument": fill.instrument, "bar": fill.bar, "time_ns": fill.time_ns, "size": fill.size,
            "price": fill.price, "commission": fill.commission}


# ---------------------------------------------------------------------- encoding


def _insert_new(s: Session, table: Table, values: dict[str, Any], key: tuple[str, ...]) -> bool:
    """INSERT unless a row with the same ``key`` exists; True if inserted.

    ON CONFLICT DO NOTHING makes two writers of the same id at once agree instead of one failing;
    only a conflict on ``key`` is ignored, every other constraint still raises.
    """
    dialect = s.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert
        stmt = upsert(table).values(**values).on_conflict_do_nothing(index_elements=list(key))
        return bool(s.execute(stmt).rowcount)  # type: ignore[attr-defined]
    where = [table.c[k] == values[k] for k in key]  # other backends: check, then insert
    if s.scalar(select(func.count()).select_from(table).where(*where)):
        return False
    s.execute(insert(table).values(**values))
    return True


def _plain(v: Any) -> Any:
    """A JSON-safe copy of ``v`` with every non-finite float (at any depth) as None, i.e. SQL/JSON null."""
    if v is None or isinstance(v, bool | str | int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, np.generic):
        return _plain(v.item())
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()]
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, enum.Enum):
        return _plain(v.value)
    if v is pd.NaT:
        return None
    to_dict = getattr(v, "to_dict", None)
    if callable(to_dict) and not isinstance(v, type):  # StrategySpec, Decision, pandas objects
        return _plain(to_dict())
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return _plain(dataclasses.asdict(v))
    return codec.jsonable(v)  # times, paths, sets, ...


def _field(row: Mapping[str, Any], name: str) -> Any:
    if name not in row or row[name] is None:
        raise KeyError(f"field {name!r} is missing")
    return row[name]


def _opt(row: Mapping[str, Any], name: str, kind: type) -> Any:
    v = row.get(name)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    try:
        return kind(v)
    except (TypeError, ValueError) as e:
        raise ValueError(f"field {name!r}: {e}") from None


def _real(row: Mapping[str, Any], name: str) -> float | None:
    try:
        return codec.real(row.get(name))
    except (TypeError, ValueError) as e:
        raise ValueError(f"field {name!r}: {e}") from None


def _required_real(row: Mapping[str, Any], name: str) -> float:
    value = _real(row, name)
    if value is None:
        raise KeyError(f"field {name!r} is missing or NaN")
    return value


def _time(row: Mapping[str, Any], name: str, ns_name: str | None = None, *, required: bool = True) -> Any:
    """A UTC datetime from ``row[name]`` (Timestamp, datetime, ISO text) or ``row[ns_name]`` (int ns)."""
    raw = row.get(name)
    if raw is None and ns_name is not None and row.get(ns_name) is not None:
        raw = pd.Timestamp(int(row[ns_name]), tz="UTC")
    try:
        value = codec.utc_datetime(raw)
    except (TypeError, ValueError) as e:
        raise ValueError(f"field {name!r}: {e}") from None
    if value is None and required:
        raise KeyError(f"field {name!r}{f' (or {ns_name!r})' if ns_name else ''} is missing")
    return value


def _enum(value: Any, kind: type[enum.Enum], name: str) -> str:
    v = value.value if isinstance(value, enum.Enum) else value
    allowed = [m.value for m in kind]  # type: ignore[attr-defined]
    if v not in allowed:
        raise ValueError(f"{name} {value!r} is not one of {', '.join(allowed)}")
    return str(v)


def _unknown(row: Mapping[str, Any], known: frozenset[str]) -> None:
    extra = sorted(set(row) - known)
    if extra:  # a misspelt key would otherwise be dropped silently
        raise ValueError(f"unknown field(s) {', '.join(map(repr, extra))}")


def _decision_values(d: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    _unknown(d, _DECISION_FIELDS)
    if d.get("action") not in DECISION_ACTIONS:
        raise ValueError(f"action {d.get('action')!r} is not one of {', '.join(DECISION_ACTIONS)}")
    factors = d.get("factors") or []
    if not isinstance(factors, list | tuple):
        raise TypeError(f"field 'factors': expected a list, got {type(factors).__name__}")
    return {
        "run_id": run_id, "id": str(_field(d, "id")), "strategy": str(_field(d, "strategy")),
        "instrument": str(_field(d, "instrument")), "time": _time(d, "time_ns"),
        "bar": int(_field(d, "bar")), "score": _real(d, "score"), "threshold": _real(d, "threshold"),
        "action": str(_field(d, "action")), "reason": str(d.get("reason") or ""),
        "factors": _plain([dataclasses.asdict(f) if dataclasses.is_dataclass(f) else f for f in factors]),
        "signal": _plain(d.get("signal")), "model": _opt(d, "model", str),
        "model_version": _opt(d, "model_version", int), "inference_path": _opt(d, "inference_path", str),
        "sentiment_source": _opt(d, "sentiment_source", str), "target_position": _real(d, "target_position"),
        "order_size": _real(d, "order_size"), "risk_rule": _opt(d, "risk_rule", str),
        "order_id": _opt(d, "order_id", str), "latency_us": _real(d, "latency_us"),
    }


def _order_values(row: Mapping[str, Any]) -> dict[str, Any]:
    _unknown(row, _ORDER_FIELDS)
    limit, stop = _real(row, "limit"), _real(row, "stop")
    if row.get("type") is not None:
        kind = _enum(row["type"], OrderType, "type")
    else:  # the same rule as Order.type
        kind = ("stop_limit" if limit is not None else "stop") if stop is not None else (
            "limit" if limit is not None else "market")
    return {
        "id": str(_field(row, "id")), "run_id": str(_field(row, "run_id")),
        "decision_id": _opt(row, "decision_id", str), "instrument": str(_field(row, "instrument")),
        "size": _real(row, "size"), "fraction": _real(row, "fraction"),
        "close_position": bool(row.get("close_position") or False), "type": kind, "limit": limit, "stop": stop,
        "sl": _real(row, "sl"), "tp": _real(row, "tp"),
        "tif": _enum(row.get("tif") or TimeInForce.GTC, TimeInForce, "tif"),
        "expires_at": _time(row, "expires_at", required=False), "tag": _opt(row, "tag", str),
        "parent_trade": _opt(row, "parent_trade", int),
        "status": _enum(row.get("status") or OrderStatus.PENDING, OrderStatus, "status"),
        "reason": _opt(row, "reason", str), "created_bar": _opt(row, "created_bar", int),
        "created_time": _time(row, "created_time", "created_ns"),
    }


def _fill_values(row: Mapping[str, Any]) -> dict[str, Any]:
    _unknown(row, _FILL_FIELDS)
    return {
        "id": str(_field(row, "id")), "order_id": str(_field(row, "order_id")), "run_id": str(_field(row, "run_id")),
        "instrument": str(_field(row, "instrument")), "bar": int(_field(row, "bar")),
        "time": _time(row, "time", "time_ns"), "size": _required_real(row, "size"),
        "price": _required_real(row, "price"),
        "commission": _real(row, "commission") or 0.0,
    }


# ---------------------------------------------------------------------- decoding


def _ts(v: dt.datetime | None) -> pd.Timestamp | None:
    return None if v is None else pd.Timestamp(v)


def _runs_query() -> Any:
    def count(model: Any) -> Any:
        return select(func.count()).where(model.run_id == LiveRun.id).scalar_subquery()
    return select(LiveRun, count(DecisionRecord).label("n_decisions"), count(OrderRecord).label("n_orders"),
                  count(FillRecord).label("n_fills"))


def _run_dict(row: Any) -> dict[str, Any]:
    r: LiveRun = row[0]
    return {"id": r.id, "mode": r.mode, "status": r.status, "instruments": list(r.instruments), "spec": r.spec,
            "settings": dict(r.settings), "summary": r.summary, "started_at": _ts(r.started_at),
            "ended_at": _ts(r.ended_at), "n_decisions": int(row.n_decisions), "n_orders": int(row.n_orders),
            "n_fills": int(row.n_fills)}


def _decision_dict(r: DecisionRecord) -> dict[str, Any]:
    d = {c: getattr(r, c) for c in DECISION_COLUMNS if c != "time_ns"}
    d["time"], d["created_at"] = pd.Timestamp(r.time), pd.Timestamp(r.created_at)
    d["time_ns"] = d["time"].value
    d["factors"] = [dict(f) for f in r.factors]
    return {c: d[c] for c in DECISION_COLUMNS}


def _order_dict(r: OrderRecord) -> dict[str, Any]:
    d = {c.key: getattr(r, c.key) for c in OrderRecord.__table__.c}
    for c in ("expires_at", "created_time", "updated_at"):
        d[c] = _ts(d[c])
    return d


def _fill_dict(r: FillRecord) -> dict[str, Any]:
    d = {c.key: getattr(r, c.key) for c in FillRecord.__table__.c}
    d["time"], d["created_at"] = pd.Timestamp(r.time), pd.Timestamp(r.created_at)
    return d


def _fills_query(*where: Any) -> Any:
    return select(FillRecord).where(*where).order_by(FillRecord.time, FillRecord.created_at, FillRecord.id)


def _order_pnl(order_id: str, fills: list[dict[str, Any]], book: list[dict[str, Any]]) -> dict[str, Any]:
    """FIFO lot matching over ``book`` (the run's fills of one instrument, time order), seen from one order."""
    lots: deque[list[Any]] = deque()  # [order_id, signed open size, price]
    gross = closed = 0.0
    for f in book:
        size, price, mine = f["size"], f["price"], f["order_id"] == order_id
        eps = _EPS * max(1.0, abs(size))
        while lots and abs(size) > eps and lots[0][1] * size < 0:
            lot = lots[0]
            qty = min(abs(lot[1]), abs(size))
            if mine or lot[0] == order_id:  # a round trip this order opened or closed
                gross += math.copysign(qty, lot[1]) * (price - lot[2])
                closed += qty
            lot[1] -= math.copysign(qty, lot[1])
            size -= math.copysign(qty, size)
            if abs(lot[1]) <= eps:
                lots.popleft()
        if abs(size) > eps:
            lots.append([f["order_id"], size, price])
    filled = sum(f["size"] for f in fills)
    commission = sum(f["commission"] for f in fills)
    return {
        "filled_size": filled,
        "avg_fill_price": sum(f["size"] * f["price"] for f in fills) / filled if filled else None,
        "commission": commission,
        "closed_size": closed,  # size of the round trips counted in realized_pnl
        "open_size": sum(lot[1] for lot in lots if lot[0] == order_id),
        "realized_pnl": gross - commission if fills else None,
    }


__all__ = ["DECISION_COLUMNS", "LiveRepository", "fill_row", "order_row"]
