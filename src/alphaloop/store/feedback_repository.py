"""Feedback records and training jobs in the project database (SQLite or PostgreSQL).

:class:`SqlFeedbackRepository` implements :class:`alphaloop.discovery.retraining.FeedbackRepository`
on a :class:`Store`'s engine: every method is one transaction, failures surface as
:class:`~alphaloop.core.errors.StoreError`. Inserting feedback is idempotent by record id
(``INSERT ... ON CONFLICT DO NOTHING``), so a batch sent twice, or by two producers at once, is
stored once and the first copy is kept.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import delete, func, select, update

from alphaloop.core.errors import StoreError
from alphaloop.discovery.feedback import FeedbackRecord
from alphaloop.discovery.retraining import TrainingJob
from alphaloop.store import codec
from alphaloop.store.feedback_models import TRAINING_JOB_STATUSES, FeedbackRow, TrainingJobRow
from alphaloop.store.model_repository import _decode_nonfinite
from alphaloop.store.repository import Store

_CHUNK = 500  # rows per statement: far below SQLite's bound-parameter limit


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


class SqlFeedbackRepository:
    """Feedback records and training jobs in ``store``'s database (``Store`` migrates it)."""

    def __init__(self, store: Store):
        self.store = store

    # ------------------------------------------------------------------ feedback

    def add_feedback(self, records: Sequence[FeedbackRecord]) -> list[str]:
        """Insert the records whose id is new, in one transaction; return every given id.

        A non-record in the batch refuses the whole batch (nothing is written).
        """
        records = list(records)
        for k, r in enumerate(records):
            if not isinstance(r, FeedbackRecord):
                raise StoreError(f"cannot store feedback: item {k} is a {type(r).__name__}, not a FeedbackRecord")
        if not records:
            return []
        unique = list({r.id: r for r in reversed(records)}.values())[::-1]  # first copy of each id wins
        with self.store._session(f"cannot store {len(records)} feedback records") as s:
            now = self.store._now()
            rows = [_row(r, now) for r in unique]
            dialect = s.get_bind().dialect.name
            if dialect in ("postgresql", "sqlite"):
                if dialect == "postgresql":
                    from sqlalchemy.dialects.postgresql import insert as upsert
                else:
                    from sqlalchemy.dialects.sqlite import insert as upsert
                for chunk in _chunks(rows):
                    s.execute(upsert(FeedbackRow).values(list(chunk)).on_conflict_do_nothing(index_elements=["id"]))
            else:  # other backends: check, then insert (a concurrent twin fails on the primary key)
                held = set(self._held_ids(s, [r["id"] for r in rows]))
                s.add_all(FeedbackRow(**r) for r in rows if r["id"] not in held)
        return [r.id for r in records]

    def _held_ids(self, s: Any, ids: Sequence[str]) -> list[str]:
        out: list[str] = []
        for chunk in _chunks(ids):
            out.extend(s.scalars(select(FeedbackRow.id).where(FeedbackRow.id.in_(chunk))))
        return out

    def has_feedback(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are stored."""
        with self.store._session("cannot look up feedback records") as s:
            return set(self._held_ids(s, list(ids)))

    def feedback(self, *, new_only: bool = False, limit: int | None = None) -> list[FeedbackRecord]:
        """Records in the order received (``new_only``: those no job has used yet)."""
        stmt = select(FeedbackRow).order_by(FeedbackRow.received_at, FeedbackRow.id)
        if new_only:
            stmt = stmt.where(FeedbackRow.used_in_job.is_(None))
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.store._session("cannot read feedback records") as s:
            rows = list(s.scalars(stmt))
        out = []
        for row in rows:
            try:
                out.append(_record(row))
            except ValueError as e:  # DiscoveryInputError is one: a row someone else wrote badly
                raise StoreError(f"feedback record {row.id!r} in the database is malformed: {e}") from e
        return out

    def count_feedback(self) -> int:
        with self.store._session("cannot count feedback records") as s:
            return int(s.scalar(select(func.count()).select_from(FeedbackRow)) or 0)

    def count_new(self) -> int:
        """Records no training job has used yet."""
        with self.store._session("cannot count new feedback records") as s:
            return int(s.scalar(select(func.count()).select_from(FeedbackRow)
                                .where(FeedbackRow.used_in_job.is_(None))) or 0)

    def mark_used(self, ids: Sequence[str], job_id: str) -> int:
        """Record that job ``job_id`` learnt from these records (the first job to use one keeps it)."""
        ids = list(dict.fromkeys(ids))
        n = 0
        with self.store._session(f"cannot mark feedback used by job {job_id}") as s:
            for chunk in _chunks(ids):
                res = s.execute(update(FeedbackRow)
                                .where(FeedbackRow.id.in_(chunk), FeedbackRow.used_in_job.is_(None))
                                .values(used_in_job=job_id).execution_options(synchronize_session=False))
                n += res.rowcount  # type: ignore[attr-defined]
        return n

    def delete_feedback(self, ids: Sequence[str]) -> int:
        """Remove records (e.g. ones found wrong); return how many were there."""
        n = 0
        with self.store._session("cannot delete feedback records") as s:
            for chunk in _chunks(list(ids)):
                n += s.execute(delete(FeedbackRow).where(FeedbackRow.id.in_(chunk))).rowcount  # type: ignore[attr-defined]
        return n

    # ------------------------------------------------------------------ jobs

    def save_job(self, job: TrainingJob) -> None:
        """Insert or replace the job's row."""
        if job.status not in TRAINING_JOB_STATUSES:
            raise StoreError(f"cannot save training job {job.id}: status {job.status!r} is not one of "
                             f"{', '.join(TRAINING_JOB_STATUSES)}")
        values = {"status": job.status, "started_at": codec.utc_datetime(job.started_at),
                  "finished_at": codec.utc_datetime(job.finished_at), "n_records": int(job.n_records),
                  "promoted": bool(job.promoted), "champion_version": job.champion_version,
                  "challenger_version": job.challenger_version, "metrics": codec.jsonable(job.metrics),
                  "reason": job.reason}
        with self.store._session(f"cannot save training job {job.id}") as s:
            row = s.get(TrainingJobRow, job.id, with_for_update=True)
            if row is None:
                s.add(TrainingJobRow(id=job.id, **values))
            else:
                for k, v in values.items():
                    setattr(row, k, v)

    def get_job(self, job_id: str) -> TrainingJob | None:
        with self.store._session(f"cannot read training job {job_id}") as s:
            row = s.get(TrainingJobRow, job_id)
            return None if row is None else _job(row)

    def list_jobs(self, limit: int = 20) -> list[TrainingJob]:
        """Newest first."""
        stmt = (select(TrainingJobRow).order_by(TrainingJobRow.started_at.desc().nulls_last(),
                                                TrainingJobRow.id.desc()).limit(limit))
        with self.store._session("cannot list training jobs") as s:
            return [_job(r) for r in s.scalars(stmt)]

    def last_trained_at(self) -> dt.datetime | None:
        """When the last succeeded job finished."""
        with self.store._session("cannot read the last training job") as s:
            return s.scalar(select(func.max(TrainingJobRow.finished_at)).where(TrainingJobRow.status == "succeeded"))


# ---------------------------------------------------------------------- encoding


def _row(r: FeedbackRecord, now: dt.datetime) -> dict[str, Any]:
    return {"id": r.id, "spec": codec.jsonable(r.spec.to_dict()), "strategy": r.spec.name,
            "instrument": r.instrument, "start_ns": r.start_ns, "end_ns": r.end_ns, "n_bars": r.n_bars,
            "regime": dict(r.regime), "metrics": dict(r.metrics), "backtest_score": r.backtest_score,
            "received_at": now, "used_in_job": None}


def _record(row: FeedbackRow) -> FeedbackRecord:
    return FeedbackRecord(id=row.id, spec=row.spec, instrument=row.instrument, start_ns=int(row.start_ns),
                          end_ns=int(row.end_ns), n_bars=int(row.n_bars), regime=row.regime, metrics=row.metrics,
                          backtest_score=float(row.backtest_score))


def _job(row: TrainingJobRow) -> TrainingJob:
    return TrainingJob(id=row.id, status=row.status, started_at=row.started_at, finished_at=row.finished_at,
                       n_records=row.n_records, promoted=bool(row.promoted), champion_version=row.champion_version,
                       challenger_version=row.challenger_version, metrics=_decode_nonfinite(dict(row.metrics)),
                       reason=row.reason)


__all__ = ["SqlFeedbackRepository"]
