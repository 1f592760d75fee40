"""Feedback loop: feedback_records and training_jobs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21

Written by hand like 0001-0004; the migration test checks the result against the ORM models
(``alphaloop.store.feedback_models``) on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "feedback_records",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("strategy", sa.Text(), nullable=False),
        sa.Column("instrument", sa.Text(), nullable=False),
        sa.Column("start_ns", sa.BigInteger(), nullable=False),
        sa.Column("end_ns", sa.BigInteger(), nullable=False),
        sa.Column("n_bars", sa.Integer(), nullable=False),
        sa.Column("regime", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("backtest_score", sa.Double(), nullable=False),
        _ts("received_at"),
        sa.Column("used_in_job", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_feedback_records"),
        sa.CheckConstraint("backtest_score >= 0 AND backtest_score <= 1", name="ck_feedback_records_backtest_score"),
    )
    op.create_index("ix_feedback_records_received_at", "feedback_records", ["received_at", "id"])
    op.create_index("ix_feedback_records_used_in_job", "feedback_records", ["used_in_job"])

    op.create_table(
        "training_jobs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("started_at", nullable=True),
        _ts("finished_at", nullable=True),
        sa.Column("n_records", sa.Integer(), nullable=False),
        sa.Column("promoted", sa.Boolean(), nullable=False),
        sa.Column("champion_version", sa.String(32), nullable=True),
        sa.Column("challenger_version", sa.String(32), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_training_jobs"),
        sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name="ck_training_jobs_status"),
    )
    op.create_index("ix_training_jobs_started_at", "training_jobs", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_training_jobs_started_at", table_name="training_jobs")
    op.drop_table("training_jobs")
    op.drop_index("ix_feedback_records_used_in_job", table_name="feedback_records")
    op.drop_index("ix_feedback_records_received_at", table_name="feedback_records")
    op.drop_table("feedback_records")
