"""ORM models of the feedback loop: feedback records and training jobs (migration 0005).

They share :class:`alphaloop.store.models.Base`, so the migration test and Alembic see them with
the rest of the schema once this module is imported (the feedback repository imports it).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from alphaloop.store.models import Base

TRAINING_JOB_STATUSES = ("queued", "running", "succeeded", "failed")


class FeedbackRow(Base):
    """One feedback record (see :class:`alphaloop.discovery.feedback.FeedbackRecord`), keyed by the
    producer's id so a resubmission inserts nothing. ``used_in_job`` names the first training job
    that learnt from it (NULL: new)."""

    __tablename__ = "feedback_records"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    spec: Mapped[dict[str, Any]]
    strategy: Mapped[str] = mapped_column(Text)  # spec name, for queries by family
    instrument: Mapped[str] = mapped_column(Text)
    start_ns: Mapped[int] = mapped_column(BigInteger)
    end_ns: Mapped[int] = mapped_column(BigInteger)
    n_bars: Mapped[int]
    regime: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    backtest_score: Mapped[float]
    received_at: Mapped[dt.datetime]
    used_in_job: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        CheckConstraint("backtest_score >= 0 AND backtest_score <= 1", name="backtest_score"),
        Index("ix_feedback_records_received_at", "received_at", "id"),
        Index("ix_feedback_records_used_in_job", "used_in_job"),
    )


class TrainingJobRow(Base):
    """A retraining job of the feedback loop and how it ended."""

    __tablename__ = "training_jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    n_records: Mapped[int]
    promoted: Mapped[bool] = mapped_column(Boolean)
    champion_version: Mapped[str | None] = mapped_column(String(32))
    challenger_version: Mapped[str | None] = mapped_column(String(32))
    metrics: Mapped[dict[str, Any]]
    reason: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name="status"),
        Index("ix_training_jobs_started_at", "started_at"),
    )


__all__ = ["TRAINING_JOB_STATUSES", "FeedbackRow", "TrainingJobRow"]
