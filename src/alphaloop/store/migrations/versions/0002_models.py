"""Model registry and prediction log: model_versions, model_aliases, prediction_records.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01

Written by hand like 0001 (types spelled out so this file keeps describing revision 0002); the
migration test checks the result against ``alphaloop.store.models`` on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("task", sa.String(16), nullable=False),
        sa.Column("horizon", sa.Integer(), nullable=False),
        sa.Column("feature_schema", sa.JSON(), nullable=False),
        _ts("data_start", nullable=True),
        _ts("data_end", nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
        sa.CheckConstraint("version >= 1", name="ck_model_versions_version"),
        sa.CheckConstraint("task IN ('regression', 'classification')", name="ck_model_versions_task"),
    )

    op.create_table(
        "model_aliases",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("name", "alias", name="pk_model_aliases"),
        sa.ForeignKeyConstraint(["name", "version"], ["model_versions.name", "model_versions.version"],
                                ondelete="CASCADE", name="fk_model_aliases_name_version_model_versions"),
    )

    op.create_table(
        "prediction_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("instrument", sa.Text(), nullable=False),
        _ts("time"),
        sa.Column("horizon", sa.Integer(), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=True),
        sa.Column("path", sa.String(16), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_prediction_records"),
    )
    op.create_index("ix_prediction_records_model_version_time", "prediction_records",
                    ["model", "version", "time"])


def downgrade() -> None:
    op.drop_index("ix_prediction_records_model_version_time", table_name="prediction_records")
    op.drop_table("prediction_records")
    op.drop_table("model_aliases")  # before model_versions: its foreign key points there
    op.drop_table("model_versions")
