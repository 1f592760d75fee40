"""Persistence for a live run is an injected "recorder": anything with the methods of
:class:`Recorder`. :class:`alphaloop.store.LiveRepository` is one and is passed in as is; tests use a
small in-memory one. The runner works without a recorder, and a recorder that fails is logged and
counted, never allowed to stop trading.

What the strategy engine calls, and when (rows are :func:`alphaloop.store.order_row` /
:func:`alphaloop.store.fill_row` dicts; order ids there are global: ``RUN_ID:N``):

* ``record_decision(decision, order=row, run_id=...)`` for each decision the strategy records;
  ``order`` is the row of the order the decision made (``decision.order_id``) when that order is new;
* ``record_order(row)`` for every other new order: sent by the strategy, a stop-loss / take-profit
  child the broker created, or the broker's own end-of-data / out-of-money close (id
  ``RUN_ID:settle:INSTRUMENT:BAR``, so its fills have an order to belong to);
* ``record_fill(row, order_status=...)`` for every fill (id: its message id, unique and stable on
  redelivery), with its order's status after the fill;
* optional: ``update_order(order_id, status, reason)`` when an order is cancelled, expires or is
  rejected without a fill; ``start_run(run_id=..., mode=..., instruments=..., spec=..., settings=...)``
  and ``finish_run(run_id=..., summary=..., status=...)`` around the run.
"""

from __future__ import annotations

from typing import Any, Protocol

from alphaloop.core.decisions import Decision
from alphaloop.core.orders import Fill, Order, OrderStatus
from alphaloop.store import fill_row as store_fill_row
from alphaloop.store import order_row as store_order_row


class Recorder(Protocol):
    def record_decision(self, decision: Decision, order: dict[str, Any] | None = None, *, run_id: str) -> Any: ...

    def record_order(self, order_row: dict[str, Any]) -> bool: ...

    def record_fill(self, fill_row: dict[str, Any], order_status: str | None = None) -> bool: ...


def order_id(run_id: str, local_id: int) -> str:
    """The global id of a broker order number (numbers restart with every run)."""
    return f"{run_id}:{local_id}"


def order_row(order: Order, run_id: str, *, decision_id: str | None = None) -> dict[str, Any]:
    return store_order_row(order, run_id, order_id=order_id(run_id, order.id), decision_id=decision_id)


def settlement_order(fill: Fill, run_id: str) -> tuple[str, dict[str, Any]]:
    """The broker's own close at end of data or out of money (fills with order id -1), as an order
    row: its id and row."""
    oid = f"{run_id}:settle:{fill.instrument}:{fill.bar}"
    order = Order(id=-1, instrument=fill.instrument, close_position=True, tag=fill.reason, created_bar=fill.bar,
                  created_ns=fill.time_ns, status=OrderStatus.FILLED, reason=fill.reason)
    return oid, store_order_row(order, run_id, order_id=oid)


def fill_row(fill: Fill, run_id: str, fill_id: str, order: str | None = None) -> dict[str, Any]:
    return store_fill_row(fill, run_id, fill_id=fill_id, order_id=order or order_id(run_id, fill.order_id))
