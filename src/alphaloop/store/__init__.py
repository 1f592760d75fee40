"""Persistence: backtest runs, trades, equity curves and strategies in SQLite or PostgreSQL.

``Store(url)`` (or ``Store.from_settings(settings)``) opens the database and migrates it to the
latest schema; see :mod:`alphaloop.store.repository` for the methods. ``SqlModelRepository(store)``
keeps the model registry's rows and the prediction log (:mod:`alphaloop.store.model_repository`).
``LiveRepository(store)`` keeps live runs: decisions with their factors, orders and fills
(:mod:`alphaloop.store.live_repository`). ``SqlFeedbackRepository(store)`` keeps backtest feedback
records and training jobs for the discovery loop (:mod:`alphaloop.store.feedback_repository`).
"""

from alphaloop.store.feedback_repository import SqlFeedbackRepository
from alphaloop.store.live_repository import DECISION_COLUMNS, LiveRepository, fill_row, order_row
from alphaloop.store.model_repository import PREDICTION_COLUMNS, SqlModelRepository
from alphaloop.store.models import STRATEGY_STATUSES
from alphaloop.store.repository import TOP_METRICS, UNSET, RunSummary, StatusEvent, Store, StrategyRecord

__all__ = [
    "DECISION_COLUMNS",
    "PREDICTION_COLUMNS",
    "STRATEGY_STATUSES",
    "TOP_METRICS",
    "UNSET",
    "LiveRepository",
    "RunSummary",
    "SqlFeedbackRepository",
    "SqlModelRepository",
    "StatusEvent",
    "Store",
    "StrategyRecord",
    "fill_row",
    "order_row",
]
