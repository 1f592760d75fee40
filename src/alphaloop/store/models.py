"""SQLAlchemy 2.0 ORM models: the one schema both SQLite and PostgreSQL get (via Alembic).

Query fields (return, Sharpe, drawdown, scores) are real columns so the discovery loop can sort
and filter in SQL; everything else a run carries stays in JSON so the schema does not chase every
new metric. Equity curves are packed arrays (see :mod:`alphaloop.store.codec`), one row per run,
because a curve is always read whole and one row per bar would dwarf the rest of the database.

Changing anything here needs a new revision in ``migrations/versions``; the migration test fails
until the two agree.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

STRATEGY_STATUSES = ("candidate", "active", "inactive")

# Deterministic constraint names, so migrations can refer to (and later drop) them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz``. SQLite has no time zones, so values are converted to UTC and
    stored naive (their text then also sorts in time order) and marked UTC again when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: alphaloop stores UTC, give a timezone")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
        float: Double(),
        bytes: LargeBinary(),
    }


class Strategy(Base):
    """One strategy spec (name + parameters), shared by every run of it; ``spec_key`` is its identity."""

    __tablename__ = "strategies"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]]
    spec_key: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="candidate")
    composite_score: Mapped[float | None]
    # the latest discovery evaluation's scores (composite_score above is theirs when set by discovery)
    ml_confidence: Mapped[float | None]
    backtest_score: Mapped[float | None]
    scored_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]

    runs: Mapped[list[BacktestRun]] = relationship(back_populates="strategy", passive_deletes=True)
    events: Mapped[list[StrategyEvent]] = relationship(
        back_populates="strategy", order_by="StrategyEvent.id", passive_deletes=True)

    __table_args__ = (
        CheckConstraint("status IN ('candidate', 'active', 'inactive')", name="status"),
        Index("ix_strategies_status", "status"),
    )


class StrategyEvent(Base):
    """An audit row per status change: who was moved from what to what, when and why."""

    __tablename__ = "strategy_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    strategy_id: Mapped[str] = mapped_column(String(64), ForeignKey("strategies.id", ondelete="CASCADE"))
    from_status: Mapped[str | None] = mapped_column(String(16))  # NULL for the row written at creation
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime]

    strategy: Mapped[Strategy] = relationship(back_populates="events")

    __table_args__ = (Index("ix_strategy_events_strategy_id", "strategy_id", "id"),)


class BacktestRun(Base):
    """One backtest: its inputs, its metrics, and the scores the discovery loop adds later."""

    __tablename__ = "backtest_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    strategy_id: Mapped[str] = mapped_column(String(64), ForeignKey("strategies.id", ondelete="RESTRICT"))
    spec: Mapped[dict[str, Any]]
    data_source: Mapped[str] = mapped_column(Text, default="")
    instruments: Mapped[list[Any]]
    start: Mapped[dt.datetime]
    end: Mapped[dt.datetime]
    n_bars: Mapped[int]
    initial_cash: Mapped[float]
    settings: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    final_equity: Mapped[float | None]
    return_pct: Mapped[float | None]
    sharpe: Mapped[float | None]
    max_drawdown_pct: Mapped[float | None]
    n_trades: Mapped[int]
    n_orders: Mapped[int] = mapped_column(default=0)
    n_fills: Mapped[int] = mapped_column(default=0)
    fingerprint: Mapped[str] = mapped_column(String(128))
    backtest_score: Mapped[float | None]
    ml_confidence: Mapped[float | None]
    composite_score: Mapped[float | None]
    ml_feedback_submitted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    feedback_submitted_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]

    strategy: Mapped[Strategy] = relationship(back_populates="runs")
    trades: Mapped[list[BacktestTrade]] = relationship(
        back_populates="run", order_by="BacktestTrade.seq", passive_deletes=True)
    equity_curve: Mapped[EquityCurve | None] = relationship(back_populates="run", passive_deletes=True)

    __table_args__ = (
        Index("ix_backtest_runs_strategy_id", "strategy_id"),
        Index("ix_backtest_runs_created_at", "created_at"),
        Index("ix_backtest_runs_composite_score", "composite_score"),
        Index("ix_backtest_runs_sharpe", "sharpe"),
        Index("ix_backtest_runs_return_pct", "return_pct"),
        # recent_unprocessed: equality on the flag, then oldest first.
        Index("ix_backtest_runs_unprocessed", "ml_feedback_submitted", "created_at"),
    )


class BacktestTrade(Base):
    """One trade of a run, closed or (``is_open``) still open when the backtest ended."""

    __tablename__ = "backtest_trades"

    run_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("backtest_runs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True)  # position in the result's DataFrame
    is_open: Mapped[bool] = mapped_column(Boolean, default=False)
    instrument: Mapped[str] = mapped_column(Text)
    size: Mapped[float]
    entry_bar: Mapped[int]
    exit_bar: Mapped[int | None]
    entry_time: Mapped[dt.datetime]
    exit_time: Mapped[dt.datetime | None]
    entry_price: Mapped[float]
    exit_price: Mapped[float | None]
    pnl: Mapped[float | None]
    return_pct: Mapped[float | None]
    commission: Mapped[float] = mapped_column(default=0.0)
    tag: Mapped[str | None] = mapped_column(Text)
    exit_reason: Mapped[str | None] = mapped_column(Text)

    run: Mapped[BacktestRun] = relationship(back_populates="trades")


class EquityCurve(Base):
    """A run's equity curve as packed arrays (see :mod:`alphaloop.store.codec`).

    ``times`` are int64 counts of ``time_unit`` since the epoch, UTC, so the index comes back with
    the resolution it went in with. ``cash`` and ``drawdown_pct`` are NULL when the result lacked them.
    """

    __tablename__ = "equity_curves"

    run_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("backtest_runs.id", ondelete="CASCADE"), primary_key=True)
    n: Mapped[int]
    time_unit: Mapped[str] = mapped_column(String(2))
    times: Mapped[bytes]
    equity: Mapped[bytes]
    cash: Mapped[bytes | None]
    drawdown_pct: Mapped[bytes | None]

    run: Mapped[BacktestRun] = relationship(back_populates="equity_curve")


class ModelVersion(Base):
    """One registered model version (see :mod:`alphaloop.ml.registry`); the ONNX file itself lives
    under the models directory at ``path`` and must hash to ``sha256``."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    task: Mapped[str] = mapped_column(String(16))
    horizon: Mapped[int]
    feature_schema: Mapped[dict[str, Any]]
    data_start: Mapped[dt.datetime | None]
    data_end: Mapped[dt.datetime | None]
    params: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime]

    __table_args__ = (
        UniqueConstraint("name", "version"),
        CheckConstraint("version >= 1", name="version"),
        CheckConstraint("task IN ('regression', 'classification')", name="task"),
    )


class ModelAlias(Base):
    """A movable name (``champion``, ``challenger``) for one version of a model."""

    __tablename__ = "model_aliases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int]
    updated_at: Mapped[dt.datetime]

    __table_args__ = (
        # An alias can only point at a registered version; deleting the version drops its aliases.
        ForeignKeyConstraint(["name", "version"], ["model_versions.name", "model_versions.version"],
                             ondelete="CASCADE", name="fk_model_aliases_name_version_model_versions"),
    )


class PredictionRecord(Base):
    """A prediction as served: which model version said what about which instrument and bar, and
    which inference path answered. Kept to score models against what later happened."""

    __tablename__ = "prediction_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[int]
    instrument: Mapped[str] = mapped_column(Text)
    time: Mapped[dt.datetime]
    horizon: Mapped[int]
    value: Mapped[float]
    confidence: Mapped[float | None]
    path: Mapped[str] = mapped_column(String(16))
    strategy: Mapped[str | None] = mapped_column(String(128))  # the strategy that asked, if any
    created_at: Mapped[dt.datetime]

    __table_args__ = (Index("ix_prediction_records_model_version_time", "model", "version", "time"),
                      Index("ix_prediction_records_strategy", "strategy"))


LIVE_MODES = ("replay", "synthetic", "live")
LIVE_RUN_STATUSES = ("running", "finished", "failed")
DECISION_ACTIONS = ("buy", "sell", "hold")
ORDER_TYPES = ("market", "limit", "stop", "stop_limit")
ORDER_TIFS = ("gtc", "day", "ioc", "gtd")
ORDER_STATUSES = ("pending", "partially_filled", "filled", "cancelled", "expired", "rejected")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class LiveRun(Base):
    """One run of the live pipeline (replayed, synthetic or live market data) and how it ended."""

    __tablename__ = "live_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    instruments: Mapped[list[Any]]
    spec: Mapped[Any] = mapped_column(JSON())  # one spec, or a list of them when several strategies run
    settings: Mapped[dict[str, Any]]
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    started_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None]

    __table_args__ = (
        CheckConstraint(_one_of("mode", LIVE_MODES), name="mode"),
        CheckConstraint(_one_of("status", LIVE_RUN_STATUSES), name="status"),
        Index("ix_live_runs_started_at", "started_at"),
    )


class DecisionRecord(Base):
    """A decision of the strategy engine with its factor breakdown (``factors`` as ``Decision.to_dict``).

    The key is (run_id, id): strategies number their decisions within a run, so the same id comes back
    in the next run. ``order_id`` is the global id of the order it led to; it has no foreign key because
    the order row points back here (``orders.decision_id``) and a cycle of keys would need deferred
    constraints on every backend.
    """

    __tablename__ = "decisions"

    run_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("live_runs.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    strategy: Mapped[str] = mapped_column(Text)
    instrument: Mapped[str] = mapped_column(Text)
    time: Mapped[dt.datetime]
    bar: Mapped[int]
    score: Mapped[float | None]  # NULL when the engine could not score (NaN)
    threshold: Mapped[float]
    action: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text)
    factors: Mapped[list[Any]]
    signal: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    model: Mapped[str | None] = mapped_column(String(128))
    model_version: Mapped[int | None]
    inference_path: Mapped[str | None] = mapped_column(String(16))
    sentiment_source: Mapped[str | None] = mapped_column(Text)
    target_position: Mapped[float | None]
    order_size: Mapped[float | None]
    risk_rule: Mapped[str | None] = mapped_column(Text)
    order_id: Mapped[str | None] = mapped_column(String(255))
    latency_us: Mapped[float | None]
    created_at: Mapped[dt.datetime]

    __table_args__ = (
        CheckConstraint(_one_of("action", DECISION_ACTIONS), name="action"),
        Index("ix_decisions_run_id_time", "run_id", "time"),
        Index("ix_decisions_order_id", "order_id"),
    )


class OrderRecord(Base):
    """An order of a live run; ``id`` is global (``<run_id>:<n>``), ``decision_id`` names the decision
    (of the same run: the key includes ``run_id``) that made it, NULL for SL/TP children and manual orders.

    Exactly one of ``size`` (units) and ``fraction`` (of equity), both signed, unless ``close_position``.
    """

    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), ForeignKey("live_runs.id", ondelete="CASCADE"))
    decision_id: Mapped[str | None] = mapped_column(String(255))
    instrument: Mapped[str] = mapped_column(Text)
    size: Mapped[float | None]
    fraction: Mapped[float | None]
    close_position: Mapped[bool] = mapped_column(Boolean)
    type: Mapped[str] = mapped_column(String(16))
    limit: Mapped[float | None]
    stop: Mapped[float | None]
    sl: Mapped[float | None]
    tp: Mapped[float | None]
    tif: Mapped[str] = mapped_column(String(8))
    expires_at: Mapped[dt.datetime | None]
    tag: Mapped[str | None] = mapped_column(Text)
    parent_trade: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    created_bar: Mapped[int | None]
    created_time: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]

    __table_args__ = (
        ForeignKeyConstraint(["run_id", "decision_id"], ["decisions.run_id", "decisions.id"],
                             ondelete="CASCADE", name="fk_orders_run_id_decision_id_decisions"),
        # Fills name (run_id, id), so the database itself keeps a fill in its order's run.
        UniqueConstraint("run_id", "id"),
        CheckConstraint("(size IS NULL OR fraction IS NULL) "
                        "AND (size IS NOT NULL OR fraction IS NOT NULL OR close_position)", name="sized"),
        CheckConstraint(_one_of("type", ORDER_TYPES), name="type"),
        CheckConstraint(_one_of("tif", ORDER_TIFS), name="tif"),
        CheckConstraint(_one_of("status", ORDER_STATUSES), name="status"),
        Index("ix_orders_run_id_created_time", "run_id", "created_time"),
        Index("ix_orders_decision_id", "decision_id"),
    )


class FillRecord(Base):
    """A fill (execution) of an order, signed size like the order's."""

    __tablename__ = "fills"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(255))
    run_id: Mapped[str] = mapped_column(String(64), ForeignKey("live_runs.id", ondelete="CASCADE"))
    instrument: Mapped[str] = mapped_column(Text)
    bar: Mapped[int]
    time: Mapped[dt.datetime]
    size: Mapped[float]
    price: Mapped[float]
    commission: Mapped[float]
    created_at: Mapped[dt.datetime]

    __table_args__ = (
        ForeignKeyConstraint(["run_id", "order_id"], ["orders.run_id", "orders.id"],
                             ondelete="CASCADE", name="fk_fills_run_id_order_id_orders"),
        Index("ix_fills_order_id_time", "order_id", "time"),
        Index("ix_fills_run_id_time", "run_id", "time"),
    )


__all__ = [
    "DECISION_ACTIONS",
    "LIVE_MODES",
    "LIVE_RUN_STATUSES",
    "ORDER_STATUSES",
    "ORDER_TIFS",
    "ORDER_TYPES",
    "STRATEGY_STATUSES",
    "BacktestRun",
    "BacktestTrade",
    "Base",
    "DecisionRecord",
    "EquityCurve",
    "FillRecord",
    "LiveRun",
    "ModelAlias",
    "ModelVersion",
    "OrderRecord",
    "PredictionRecord",
    "Strategy",
    "StrategyEvent",
    "UTCDateTime",
]
