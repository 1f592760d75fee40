"""The store: backtest results and strategies in SQLite (default) or PostgreSQL.

Every public method is one transaction; a failure rolls it back and surfaces as
:class:`~alphaloop.core.errors.StoreError` with a one-line message, so callers never see a driver
exception nor a half-written run.
"""

from __future__ import annotations

import datetime as dt
import enum
import importlib.util
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, create_engine, event, false, insert, select, text, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from alphaloop.core.config import Settings
from alphaloop.core.errors import StoreError
from alphaloop.core.ids import new_id
from alphaloop.core.results import TRADE_COLUMNS, BacktestResult
from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.store import codec
from alphaloop.store import migrate as migrations
from alphaloop.store.models import (
    STRATEGY_STATUSES,
    BacktestRun,
    BacktestTrade,
    EquityCurve,
    Strategy,
    StrategyEvent,
)

TOP_METRICS = ("composite_score", "sharpe", "return_pct")

# Metric names tried, in order, for each query column: alphaloop's snake_case first, then the names
# backtesting.py reports, so results from either kind of engine land in the same columns.
_METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "final_equity": ("final_equity", "Equity Final [$]"),
    "return_pct": ("return_pct", "Return [%]"),
    "sharpe": ("sharpe", "sharpe_ratio", "Sharpe Ratio"),
    "max_drawdown_pct": ("max_drawdown_pct", "Max. Drawdown [%]"),
    "n_trades": ("n_trades", "# Trades"),
}
_FLOAT_TRADE_COLUMNS = ("size", "entry_price", "exit_price", "pnl", "return_pct", "commission")
_CHUNK = 500  # ids per IN (...): far below SQLite's bound-parameter limit


class _Unset(enum.Enum):
    UNSET = 0


UNSET = _Unset.UNSET  # "leave this score as it is" (None clears it)


@dataclass(frozen=True, slots=True)
class StrategyRecord:
    """A row of ``strategies``."""

    id: str
    name: str
    params: dict[str, Any]
    spec_key: str
    status: str
    composite_score: float | None
    created_at: pd.Timestamp
    updated_at: pd.Timestamp

    @property
    def spec(self) -> StrategySpec:
        return StrategySpec(self.name, dict(self.params))


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """A row of ``strategy_events``; ``from_status`` is None for the row written at creation."""

    id: int
    strategy_id: str
    from_status: str | None
    to_status: str
    reason: str
    created_at: pd.Timestamp


@dataclass(frozen=True, slots=True)
class RunSummary:
    """A run without its trades and equity curve: what listings and the discovery queries return."""

    run_id: str
    strategy_id: str
    spec: StrategySpec
    data_source: str
    instruments: list[str]
    start: pd.Timestamp
    end: pd.Timestamp
    n_bars: int
    initial_cash: float
    metrics: dict[str, Any]
    final_equity: float | None
    return_pct: float | None
    sharpe: float | None
    max_drawdown_pct: float | None
    n_trades: int
    fingerprint: str
    backtest_score: float | None
    ml_confidence: float | None
    composite_score: float | None
    ml_feedback_submitted: bool
    feedback_submitted_at: pd.Timestamp | None
    created_at: pd.Timestamp


class Store:
    """Repository of backtest runs and strategies.

    ``Store(url)`` connects and brings the schema to the latest migration (a database already there
    is only read; ``migrate=False`` skips even that check). Use it as a context manager or call :meth:`close`. ``clock`` (a
    callable returning an aware ``datetime``) stamps rows; tests pass a fake one.
    """

    def __init__(self, url: str, *, migrate: bool = True, connect_timeout: int = 5,
                 clock: Callable[[], dt.datetime] | None = None):
        try:
            parsed = make_url(url)
        except (sa_exc.ArgumentError, ValueError) as e:
            shown = re.sub(r":[^:@/]*@", ":***@", str(url))  # never echo a password
            raise StoreError(f"invalid database URL {shown!r}: {e}") from None
        self.url = parsed.render_as_string(hide_password=True)
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._closed = False
        self._engine = _create_engine(parsed, self.url, connect_timeout)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        try:
            if migrate:
                migrations.upgrade(self._engine)
            else:
                with self._engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
        except Exception as e:
            self._engine.dispose()
            # The driver's own text is reduced to its first line: enough to act on, no traceback noise.
            raise StoreError(f"cannot open database {self.url}: {_reason(e)}") from None

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Store:
        """The store ``settings.database_url`` names (``$ALPHALOOP_DATABASE_URL`` or the home SQLite file)."""
        return cls(settings.database_url, **kwargs)

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r}{', closed' if self._closed else ''})"

    # ------------------------------------------------------------------ writes

    def save_backtest(self, result: BacktestResult) -> str:
        """Store a result (strategy row reused by spec key) in one transaction; return its run id.

        ``result.run_id`` is assigned (``run_...``) when None, and only once the run is committed.
        Any failure leaves nothing behind: no run, trades, equity, nor a new strategy row.
        """
        run_id = result.run_id or new_id("run")
        action = f"cannot save run {run_id}"
        try:
            run_row = _run_row(result)
            trade_rows = _trade_rows(run_id, result)
            curve_row = _curve_row(result.equity)
        except Exception as e:  # a malformed result: refused before the database is touched
            raise StoreError(f"{action}: {e}") from e
        with self._session(action) as s:
            now = self._now()
            strategy_id = _ensure_strategy(s, result.spec, now, run_id)
            s.add(BacktestRun(id=run_id, strategy_id=strategy_id, created_at=now, **run_row))
            s.flush()  # the run row must exist before its trades and curve reference it
            if trade_rows:
                s.execute(insert(BacktestTrade), trade_rows)
            s.add(EquityCurve(run_id=run_id, **curve_row))
        result.run_id = run_id
        return run_id

    def mark_processed(self, run_ids: Iterable[str]) -> int:
        """Flag runs as fed back to the ML service; return how many were newly flagged.

        Idempotent: already-flagged runs keep their first ``feedback_submitted_at``. Unknown ids
        raise StoreError and flag nothing.
        """
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return 0
        with self._session("cannot mark runs processed") as s:
            _require_runs(s, ids)
            now = self._now()
            n = 0
            for chunk in _chunks(ids):
                res = s.execute(
                    update(BacktestRun)
                    .where(BacktestRun.id.in_(chunk), BacktestRun.ml_feedback_submitted == false())
                    .values(ml_feedback_submitted=True, feedback_submitted_at=now)
                    .execution_options(synchronize_session=False))
                n += res.rowcount  # type: ignore[attr-defined]
            return n

    def set_scores(self, run_id: str, *, backtest_score: float | _Unset | None = UNSET,
                   ml_confidence: float | _Unset | None = UNSET,
                   composite_score: float | _Unset | None = UNSET) -> None:
        """Set the discovery scores of a run (omitted ones stay, None clears).

        The strategy's ``composite_score`` follows the composite of its most recent scored run, so
        ranking strategies needs no join.
        """
        values = {k: codec.real(v) for k, v in (("backtest_score", backtest_score),
                                                 ("ml_confidence", ml_confidence),
                                                 ("composite_score", composite_score)) if v is not UNSET}
        with self._session(f"cannot set scores of run {run_id}") as s:
            run = s.get(BacktestRun, run_id)
            if run is None:
                raise StoreError(f"unknown run id {run_id!r}")
            for k, v in values.items():
                setattr(run, k, v)
            if "composite_score" in values:
                s.flush()
                latest = s.scalar(
                    select(BacktestRun.composite_score)
                    .where(BacktestRun.strategy_id == run.strategy_id, BacktestRun.composite_score.is_not(None))
                    .order_by(BacktestRun.created_at.desc(), BacktestRun.id.desc()).limit(1))
                strategy = s.get_one(Strategy, run.strategy_id)
                strategy.composite_score = latest
                strategy.updated_at = self._now()

    def set_strategy_status(self, strategy_id: str, status: str, reason: str) -> bool:
        """Move a strategy to ``status`` and record why; return False (and record nothing) if already there."""
        if status not in STRATEGY_STATUSES:
            raise ValueError(f"status {status!r} is not one of {', '.join(STRATEGY_STATUSES)}")
        with self._session(f"cannot set status of strategy {strategy_id}") as s:
            # Row lock (PostgreSQL) so two concurrent changes record the right from_status.
            strategy = s.get(Strategy, strategy_id, with_for_update=True)
            if strategy is None:
                raise StoreError(f"unknown strategy id {strategy_id!r}")
            if strategy.status == status:
                return False
            now = self._now()
            s.add(StrategyEvent(strategy_id=strategy_id, from_status=strategy.status, to_status=status,
                                reason=reason, created_at=now))
            strategy.status = status
            strategy.updated_at = now
            return True

    def ensure_strategy(self, spec: StrategySpec, reason: str = "created by discovery") -> str:
        """The id of ``spec``'s strategy row, created as a candidate (with its audit row) if new."""
        with self._session(f"cannot create strategy {spec.name}") as s:
            return _ensure_strategy(s, spec, self._now(), reason=reason)

    def apply_status_changes(self, changes: Sequence[Any]) -> int:
        """Apply a discovery run's verdicts in ONE transaction; return how many statuses changed.

        Each change has ``spec`` (a StrategySpec, or a strategy id string), ``status``, ``reason``
        and the scores ``ml_confidence``, ``backtest_score``, ``composite_score`` (None leaves a
        stored score as it is). Missing strategies are created as candidates; scores are stored
        with their time; a status that differs is moved with an audit row. Any failure (an
        unknown id, a bad status, a score outside [0, 1]) rolls everything back.
        """
        changes = list(changes)
        for k, c in enumerate(changes):
            if c.status not in STRATEGY_STATUSES:
                raise StoreError(f"change {k}: status {c.status!r} is not one of {', '.join(STRATEGY_STATUSES)}")
            for name in ("ml_confidence", "backtest_score", "composite_score"):
                v = getattr(c, name)
                if v is not None and not 0.0 <= float(v) <= 1.0:
                    raise StoreError(f"change {k}: {name} {v!r} is not within [0, 1]")
        n = 0
        with self._session("cannot apply strategy status changes") as s:
            now = self._now()
            for c in changes:
                if isinstance(c.spec, StrategySpec):
                    sid = _ensure_strategy(s, c.spec, now, reason="created by discovery")
                else:
                    sid = str(c.spec)
                row = s.get(Strategy, sid, with_for_update=True)
                if row is None:
                    raise StoreError(f"unknown strategy id {sid!r}")
                scores = {k: codec.real(getattr(c, k)) for k in ("ml_confidence", "backtest_score", "composite_score")}
                if any(v is not None for v in scores.values()):
                    for k, v in scores.items():
                        if v is not None:
                            setattr(row, k, v)
                    row.scored_at = now
                    row.updated_at = now
                if row.status != c.status:
                    s.add(StrategyEvent(strategy_id=sid, from_status=row.status, to_status=c.status,
                                        reason=c.reason, created_at=now))
                    row.status = c.status
                    row.updated_at = now
                    n += 1
                s.flush()
        return n

    def strategy_scores(self, status: str | None = None) -> list[dict[str, Any]]:
        """Each strategy's latest discovery scores: id, spec, status, ml_confidence, backtest_score,
        composite_score, scored_at; best composite first."""
        stmt = _strategies_by_score(status)
        with self._session("cannot read strategy scores") as s:
            return [{"id": r.id, "spec": StrategySpec(r.name, dict(r.params)), "status": r.status,
                     "ml_confidence": r.ml_confidence, "backtest_score": r.backtest_score,
                     "composite_score": r.composite_score, "scored_at": _ts(r.scored_at)}
                    for r in s.scalars(stmt)]

    # ------------------------------------------------------------------ reads

    def get_run(self, run_id: str) -> BacktestResult:
        """The stored result rebuilt: metrics, closed and open trades, equity curve (index UTC)."""
        with self._session(f"cannot read run {run_id}") as s:
            run = s.get(BacktestRun, run_id)
            if run is None:
                raise StoreError(f"unknown run id {run_id!r}")
            trades = s.execute(select(*BacktestTrade.__table__.c)
                               .where(BacktestTrade.run_id == run_id).order_by(BacktestTrade.seq)).all()
            curve = s.get(EquityCurve, run_id)
            try:
                equity = _equity_frame(curve)
            except (ValueError, TypeError, zlib.error) as e:
                raise StoreError(f"run {run_id}: stored equity curve is corrupt ({e})") from e
        return BacktestResult(
            spec=_spec(run.spec), instruments=list(run.instruments), start=pd.Timestamp(run.start),
            end=pd.Timestamp(run.end), n_bars=run.n_bars, initial_cash=run.initial_cash,
            metrics=codec.decode_metrics(run.metrics), trades=_trades_frame([t for t in trades if not t.is_open]),
            equity=equity, fingerprint=run.fingerprint,
            open_trades=_trades_frame([t for t in trades if t.is_open]), n_orders=run.n_orders,
            n_fills=run.n_fills, data_source=run.data_source, run_id=run.id, settings=dict(run.settings))

    def list_runs(self, limit: int = 50, *, strategy_id: str | None = None) -> list[RunSummary]:
        """Newest runs first, optionally of one strategy."""
        stmt = select(BacktestRun).order_by(BacktestRun.created_at.desc(), BacktestRun.id.desc()).limit(limit)
        if strategy_id is not None:
            stmt = stmt.where(BacktestRun.strategy_id == strategy_id)
        return self._summaries("cannot list runs", stmt)

    def top_performing(self, limit: int = 10, metric: str = "composite_score") -> list[RunSummary]:
        """Best runs by ``metric`` (one of ``TOP_METRICS``), highest first, runs without it last."""
        if metric not in TOP_METRICS:
            raise ValueError(f"metric {metric!r} is not one of {', '.join(TOP_METRICS)}")
        col = getattr(BacktestRun, metric)
        stmt = (select(BacktestRun)
                .order_by(col.desc().nulls_last(), BacktestRun.created_at.desc(), BacktestRun.id.desc())
                .limit(limit))
        return self._summaries("cannot query top runs", stmt)

    def recent_unprocessed(self, limit: int = 100) -> list[RunSummary]:
        """Runs not yet fed back to the ML service, oldest first (a queue: first saved, first sent)."""
        stmt = (select(BacktestRun).where(BacktestRun.ml_feedback_submitted == false())
                .order_by(BacktestRun.created_at.asc(), BacktestRun.id.asc()).limit(limit))
        return self._summaries("cannot query unprocessed runs", stmt)

    def by_composite_range(self, lo: float, hi: float, limit: int | None = None) -> list[RunSummary]:
        """Runs with ``lo <= composite_score <= hi``, highest first; unscored runs never match."""
        if lo > hi:
            raise ValueError(f"empty composite range: lo {lo} > hi {hi}")
        stmt = (select(BacktestRun).where(BacktestRun.composite_score.between(lo, hi))
                .order_by(BacktestRun.composite_score.desc(), BacktestRun.created_at.desc(),
                          BacktestRun.id.desc()))
        if limit is not None:
            stmt = stmt.limit(limit)
        return self._summaries("cannot query runs by composite score", stmt)

    def get_strategy(self, strategy_id: str | None = None, *, spec: StrategySpec | None = None,
                     spec_key: str | None = None) -> StrategyRecord:
        """One strategy, by id, by spec or by spec key (exactly one of them)."""
        if sum(x is not None for x in (strategy_id, spec, spec_key)) != 1:
            raise ValueError("give exactly one of strategy_id, spec, spec_key")
        key = spec.key if spec is not None else spec_key
        with self._session("cannot read strategy") as s:
            if strategy_id is not None:
                row = s.get(Strategy, strategy_id)
            else:
                row = s.scalar(select(Strategy).where(Strategy.spec_key == key))
            if row is None:
                what = f"id {strategy_id!r}" if strategy_id is not None else f"spec key {key!r}"
                raise StoreError(f"unknown strategy {what}")
            return _strategy_record(row)

    def list_strategies(self, status: str | None = None) -> list[StrategyRecord]:
        """Strategies (of one status, if given), best composite score first, unscored last."""
        stmt = _strategies_by_score(status)
        with self._session("cannot list strategies") as s:
            return [_strategy_record(r) for r in s.scalars(stmt)]

    def strategy_events(self, strategy_id: str) -> list[StatusEvent]:
        """The status history of a strategy, oldest first."""
        with self._session(f"cannot read events of strategy {strategy_id}") as s:
            if s.get(Strategy, strategy_id) is None:
                raise StoreError(f"unknown strategy id {strategy_id!r}")
            rows = s.scalars(select(StrategyEvent).where(StrategyEvent.strategy_id == strategy_id)
                             .order_by(StrategyEvent.id))
            return [StatusEvent(r.id, r.strategy_id, r.from_status, r.to_status, r.reason,
                                pd.Timestamp(r.created_at)) for r in rows]

    # ------------------------------------------------------------------ plumbing

    def _now(self) -> dt.datetime:
        t = self._clock()
        return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)

    @contextmanager
    def _session(self, action: str) -> Iterator[Session]:
        """One transaction; commit on success, roll back and raise StoreError on any failure."""
        if self._closed:
            raise StoreError(f"{action}: store {self.url} is closed")
        try:
            with self._sessions.begin() as s:
                yield s
        except StoreError:
            raise
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as e:
            raise StoreError(f"{action}: database {self.url}: {_reason(e)}") from e
        except Exception as e:
            raise StoreError(f"{action}: {_reason(e)}") from e

    def _summaries(self, action: str, stmt: Any) -> list[RunSummary]:
        with self._session(action) as s:
            return [_summary(r) for r in s.scalars(stmt)]



# ---------------------------------------------------------------------- engine


def _strategies_by_score(status: str | None) -> Any:
    """Strategies (of one status, if given), best composite score first, unscored last."""
    if status is not None and status not in STRATEGY_STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(STRATEGY_STATUSES)}")
    stmt = select(Strategy).order_by(Strategy.composite_score.desc().nulls_last(),
                                     Strategy.created_at.asc(), Strategy.id.asc())
    return stmt if status is None else stmt.where(Strategy.status == status)


def _create_engine(url: URL, shown: str, connect_timeout: int) -> Engine:
    backend = url.get_backend_name()
    kwargs: dict[str, Any] = {"json_serializer": _json_dumps}
    connect_args: dict[str, Any] = {}
    if backend == "sqlite":
        db = url.database or ""
        if db in ("", ":memory:"):
            # One shared connection, or every checkout would see its own empty database.
            kwargs["poolclass"] = StaticPool
            connect_args["check_same_thread"] = False
        elif not db.startswith("file:"):
            try:
                Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot open database {shown}: cannot create its folder ({e.strerror})") from None
        connect_args["timeout"] = 30  # wait for another writer's lock instead of failing at once
    elif backend == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername=_default_pg_driver())
        kwargs["pool_pre_ping"] = True  # survive server restarts between discovery cycles
        if "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = connect_timeout  # fail fast on an unreachable host
    try:
        engine = create_engine(url, connect_args=connect_args, **kwargs)
    except Exception as e:  # unknown dialect, driver not installed
        raise StoreError(f"cannot open database {shown}: {_reason(e)}") from None
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
    return engine


def _default_pg_driver() -> str:
    """The driver for a bare ``postgresql://`` URL: psycopg2 (what alphaloop's extras install) if present.

    SQLAlchemy 2.1 defaults to psycopg 3, which may not be installed; an explicit
    ``postgresql+driver://`` URL is always taken as given.
    """
    for module, name in (("psycopg2", "postgresql+psycopg2"), ("psycopg", "postgresql+psycopg")):
        if importlib.util.find_spec(module) is not None:
            return name
    return "postgresql"


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # SQLite ignores foreign keys (and so ON DELETE CASCADE) unless asked, per connection.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _json_dumps(obj: Any) -> str:
    # Values are sanitised by codec.jsonable first; refusing NaN here keeps SQLite as strict as PostgreSQL.
    return json.dumps(obj, allow_nan=False)


def _reason(e: BaseException) -> str:
    """The first line of the driver's message (the rest is hints, SQL and traceback noise)."""
    orig = getattr(e, "orig", None) or e
    for line in str(orig).splitlines():
        if line.strip():
            return line.strip()
    return type(orig).__name__


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i:i + _CHUNK]


def _names(ids: Sequence[str], most: int = 5) -> str:
    shown = ", ".join(repr(i) for i in ids[:most])
    return shown + (f" and {len(ids) - most} more" if len(ids) > most else "")


def _require_runs(s: Session, ids: Sequence[str]) -> None:
    found: set[str] = set()
    for chunk in _chunks(ids):
        found.update(s.scalars(select(BacktestRun.id).where(BacktestRun.id.in_(chunk))))
    missing = [i for i in ids if i not in found]
    if missing:
        raise StoreError(f"unknown run id{'s' if len(missing) > 1 else ''} {_names(missing)}")


def _ensure_strategy(s: Session, spec: StrategySpec, now: dt.datetime, run_id: str | None = None, *,
                     reason: str | None = None) -> str:
    """The id of the strategy row for ``spec``, inserting it (and its creation event) if new.

    INSERT ... ON CONFLICT DO NOTHING makes two writers saving the same new spec at once agree on
    one row instead of one of them failing on the unique key.
    """
    key = spec.key
    values = {"id": new_id("strat"), "name": spec.name, "params": codec.jsonable(spec.params),
              "spec_key": key, "status": "candidate", "composite_score": None,
              "created_at": now, "updated_at": now}
    dialect = s.get_bind().dialect.name
    created: str | None
    if dialect in ("postgresql", "sqlite"):
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert
        stmt = (upsert(Strategy).values(**values)
                .on_conflict_do_nothing(index_elements=["spec_key"]).returning(Strategy.id))
        created = s.execute(stmt).scalar_one_or_none()
    else:  # other backends: plain check-then-insert (a concurrent twin fails on the unique key)
        created = None
        if s.scalar(select(Strategy.id).where(Strategy.spec_key == key)) is None:
            s.execute(insert(Strategy).values(**values))
            created = values["id"]
    if created is None:
        return s.scalars(select(Strategy.id).where(Strategy.spec_key == key)).one()
    s.add(StrategyEvent(strategy_id=created, from_status=None, to_status="candidate",
                        reason=reason or f"created for run {run_id}", created_at=now))
    return created


# ---------------------------------------------------------------------- encoding


def _metric(metrics: dict[str, Any], name: str) -> Any:
    for k in _METRIC_KEYS[name]:
        if k in metrics and metrics[k] is not None:
            return metrics[k]
    return None


def _run_row(result: BacktestResult) -> dict[str, Any]:
    metrics = result.metrics
    final_equity = codec.real(_metric(metrics, "final_equity"))
    return_pct = codec.real(_metric(metrics, "return_pct"))
    if return_pct is None and final_equity is not None and result.initial_cash:
        return_pct = (final_equity / result.initial_cash - 1.0) * 100.0
    n_trades = codec.real(_metric(metrics, "n_trades"))
    return {
        "spec": {"name": result.spec.name, "params": codec.jsonable(result.spec.params)},
        "data_source": result.data_source or "",
        "instruments": [str(i) for i in result.instruments],
        "start": codec.utc_datetime(result.start),
        "end": codec.utc_datetime(result.end),
        "n_bars": int(result.n_bars),
        "initial_cash": float(result.initial_cash),
        "settings": codec.jsonable(result.settings or {}),
        "metrics": codec.jsonable(metrics),
        "final_equity": final_equity,
        "return_pct": return_pct,
        "sharpe": codec.real(_metric(metrics, "sharpe")),
        "max_drawdown_pct": codec.real(_metric(metrics, "max_drawdown_pct")),
        "n_trades": int(n_trades) if n_trades is not None else len(result.trades),
        "n_orders": int(result.n_orders),
        "n_fills": int(result.n_fills),
        "fingerprint": result.fingerprint,
    }


def _opt_int(v: Any) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


def _opt_str(v: Any) -> str | None:
    return None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)


def _trade_rows(run_id: str, result: BacktestResult) -> list[dict[str, Any]]:
    """Closed trades, then open ones, numbered in that order.

    Missing values go in as NULL and the schema's NOT NULL constraints decide what is acceptable.
    """
    rows: list[dict[str, Any]] = []
    for is_open, df, label in ((False, result.trades, "trades"), (True, result.open_trades, "open_trades")):
        if df is None or len(df) == 0:
            continue
        missing = [c for c in TRADE_COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"{label} lacks column(s) {', '.join(missing)}")
        cols = {c: df[c].tolist() for c in TRADE_COLUMNS}
        for i in range(len(df)):
            rows.append({
                "run_id": run_id, "seq": len(rows), "is_open": is_open,
                "instrument": _opt_str(cols["instrument"][i]),
                "size": codec.real(cols["size"][i]),
                "entry_bar": _opt_int(cols["entry_bar"][i]),
                "exit_bar": _opt_int(cols["exit_bar"][i]),
                "entry_time": codec.utc_datetime(cols["entry_time"][i]),
                "exit_time": codec.utc_datetime(cols["exit_time"][i]),
                "entry_price": codec.real(cols["entry_price"][i]),
                "exit_price": codec.real(cols["exit_price"][i]),
                "pnl": codec.real(cols["pnl"][i]),
                "return_pct": codec.real(cols["return_pct"][i]),
                "commission": codec.real(cols["commission"][i]) or 0.0,
                "tag": _opt_str(cols["tag"][i]),
                "exit_reason": _opt_str(cols["exit_reason"][i]),
            })
    return rows


def _curve_row(equity: pd.DataFrame) -> dict[str, Any]:
    if "equity" not in equity.columns:
        raise ValueError("equity lacks column 'equity'")
    idx = equity.index
    if not isinstance(idx, pd.DatetimeIndex):
        if len(idx):
            raise ValueError(f"equity must be indexed by time, not {type(idx).__name__}")
        idx = pd.DatetimeIndex([], tz="UTC")
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    if idx.hasnans:
        raise ValueError("equity index has missing times (NaT)")

    def floats(col: str) -> bytes | None:
        return codec.pack_float64(equity[col].to_numpy(dtype=np.float64)) if col in equity.columns else None

    return {"n": len(idx), "time_unit": idx.unit, "times": codec.pack_int64(idx.asi8),
            "equity": floats("equity"), "cash": floats("cash"), "drawdown_pct": floats("drawdown_pct")}


# ---------------------------------------------------------------------- decoding


def _spec(raw: dict[str, Any]) -> StrategySpec:
    return StrategySpec(raw["name"], dict(raw.get("params") or {}))


def _trades_frame(rows: Sequence[Any]) -> pd.DataFrame:
    df = pd.DataFrame({c: [getattr(r, c) for r in rows] for c in TRADE_COLUMNS}, columns=list(TRADE_COLUMNS))
    for c in _FLOAT_TRADE_COLUMNS:
        df[c] = df[c].astype(np.float64)
    for c in ("entry_time", "exit_time"):  # microseconds: what both databases keep
        df[c] = pd.to_datetime(df[c], utc=True).dt.as_unit("us")
    df["entry_bar"] = df["entry_bar"].astype(np.int64)
    # Open trades have no exit bar: keep integers when every row has one, else floats with NaN.
    df["exit_bar"] = df["exit_bar"].astype(np.float64 if df["exit_bar"].isna().any() else np.int64)
    return df


def _equity_frame(curve: EquityCurve | None) -> pd.DataFrame:
    if curve is None:
        return pd.DataFrame({"equity": np.array([], dtype=np.float64)}, index=pd.DatetimeIndex([], tz="UTC"))
    n = curve.n
    times = codec.unpack(curve.times, "int64", n, "times")
    idx = pd.DatetimeIndex(times.astype(f"datetime64[{curve.time_unit}]")).tz_localize("UTC")
    data = {"equity": codec.unpack(curve.equity, "float64", n, "equity")}
    for col in ("cash", "drawdown_pct"):
        blob = getattr(curve, col)
        if blob is not None:
            data[col] = codec.unpack(blob, "float64", n, col)
    return pd.DataFrame(data, index=idx)


def _ts(v: dt.datetime | None) -> pd.Timestamp | None:
    return None if v is None else pd.Timestamp(v)


def _summary(r: BacktestRun) -> RunSummary:
    return RunSummary(
        run_id=r.id, strategy_id=r.strategy_id, spec=_spec(r.spec), data_source=r.data_source,
        instruments=list(r.instruments), start=pd.Timestamp(r.start), end=pd.Timestamp(r.end),
        n_bars=r.n_bars, initial_cash=r.initial_cash, metrics=codec.decode_metrics(r.metrics),
        final_equity=r.final_equity, return_pct=r.return_pct, sharpe=r.sharpe,
        max_drawdown_pct=r.max_drawdown_pct, n_trades=r.n_trades, fingerprint=r.fingerprint,
        backtest_score=r.backtest_score, ml_confidence=r.ml_confidence, composite_score=r.composite_score,
        ml_feedback_submitted=r.ml_feedback_submitted, feedback_submitted_at=_ts(r.feedback_submitted_at),
        created_at=pd.Timestamp(r.created_at))


def _strategy_record(r: Strategy) -> StrategyRecord:
    return StrategyRecord(r.id, r.name, dict(r.params), r.spec_key, r.status, r.composite_score,
                          pd.Timestamp(r.created_at), pd.Timestamp(r.updated_at))
