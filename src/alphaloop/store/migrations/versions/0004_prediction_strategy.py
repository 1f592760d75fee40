"""Prediction records say which strategy asked, so accuracy can be judged per strategy.

Revision ID: 0004
Revises: 0003
Create Date: 2025-03-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("prediction_records") as batch:
        batch.add_column(sa.Column("strategy", sa.String(128), nullable=True))
        batch.create_index("ix_prediction_records_strategy", ["strategy"])


def downgrade() -> None:
    with op.batch_alter_table("prediction_records") as batch:
        batch.drop_index("ix_prediction_records_strategy")
        batch.drop_column("strategy")
