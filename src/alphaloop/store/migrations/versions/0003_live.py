"""Live runs: live_runs, decisions (with their factor breakdown), orders and fills.

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-01

Written by hand like 0001 (types spelled out so this file keeps describing revision 0003); the
migration test checks the result against ``alphaloop.store.models`` on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _real(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.Double(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "live_runs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("instruments", sa.JSON(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=True),
        _ts("started_at"),
        _ts("ended_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_live_runs"),
        sa.CheckConstraint("mode IN ('replay', 'synthetic', 'live')", name="ck_live_runs_mode"),
        sa.CheckConstraint("status IN ('running', 'finished', 'failed')", name="ck_live_runs_status"),
    )
    op.create_index("ix_live_runs_started_at", "live_runs", ["started_at"])

    op.create_table(
        "decisions",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("strategy", sa.Text(), nullable=False),
        sa.Column("instrument", sa.Text(), nullable=False),
        _ts("time"),
        sa.Column("bar", sa.Integer(), nullable=False),
        _real("score"),
        _real("threshold", nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("factors", sa.JSON(), nullable=False),
        sa.Column("signal", sa.JSON(), nullable=True),
        sa.Column("model", sa.String(128), nullable=True),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("inference_path", sa.String(16), nullable=True),
        sa.Column("sentiment_source", sa.Text(), nullable=True),
        _real("target_position"),
        _real("order_size"),
        sa.Column("risk_rule", sa.Text(), nullable=True),
        sa.Column("order_id", sa.String(255), nullable=True),
        _real("latency_us"),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("run_id", "id", name="pk_decisions"),
        sa.ForeignKeyConstraint(["run_id"], ["live_runs.id"], ondelete="CASCADE",
                                name="fk_decisions_run_id_live_runs"),
        sa.CheckConstraint("action IN ('buy', 'sell', 'hold')", name="ck_decisions_action"),
    )
    op.create_index("ix_decisions_run_id_time", "decisions", ["run_id", "time"])
    op.create_index("ix_decisions_order_id", "decisions", ["order_id"])

    op.create_table(
        "orders",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("decision_id", sa.String(255), nullable=True),
        sa.Column("instrument", sa.Text(), nullable=False),
        _real("size"),
        _real("fraction"),
        sa.Column("close_position", sa.Boolean(), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        _real("limit"),
        _real("stop"),
        _real("sl"),
        _real("tp"),
        sa.Column("tif", sa.String(8), nullable=False),
        _ts("expires_at", nullable=True),
        sa.Column("tag", sa.Text(), nullable=True),
        sa.Column("parent_trade", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_bar", sa.Integer(), nullable=True),
        _ts("created_time"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.UniqueConstraint("run_id", "id", name="uq_orders_run_id_id"),
        sa.ForeignKeyConstraint(["run_id"], ["live_runs.id"], ondelete="CASCADE",
                                name="fk_orders_run_id_live_runs"),
        sa.ForeignKeyConstraint(["run_id", "decision_id"], ["decisions.run_id", "decisions.id"],
                                ondelete="CASCADE", name="fk_orders_run_id_decision_id_decisions"),
        sa.CheckConstraint("(size IS NULL OR fraction IS NULL) "
                           "AND (size IS NOT NULL OR fraction IS NOT NULL OR close_position)",
                           name="ck_orders_sized"),
        sa.CheckConstraint("type IN ('market', 'limit', 'stop', 'stop_limit')", name="ck_orders_type"),
        sa.CheckConstraint("tif IN ('gtc', 'day', 'ioc', 'gtd')", name="ck_orders_tif"),
        sa.CheckConstraint("status IN ('pending', 'partially_filled', 'filled', 'cancelled', 'expired', "
                           "'rejected')", name="ck_orders_status"),
    )
    op.create_index("ix_orders_run_id_created_time", "orders", ["run_id", "created_time"])
    op.create_index("ix_orders_decision_id", "orders", ["decision_id"])

    op.create_table(
        "fills",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("order_id", sa.String(255), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("instrument", sa.Text(), nullable=False),
        sa.Column("bar", sa.Integer(), nullable=False),
        _ts("time"),
        _real("size", nullable=False),
        _real("price", nullable=False),
        _real("commission", nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_fills"),
        sa.ForeignKeyConstraint(["run_id"], ["live_runs.id"], ondelete="CASCADE",
                                name="fk_fills_run_id_live_runs"),
        sa.ForeignKeyConstraint(["run_id", "order_id"], ["orders.run_id", "orders.id"], ondelete="CASCADE",
                                name="fk_fills_run_id_order_id_orders"),
    )
    op.create_index("ix_fills_order_id_time", "fills", ["order_id", "time"])
    op.create_index("ix_fills_run_id_time", "fills", ["run_id", "time"])


def downgrade() -> None:
    # Children first: foreign keys point at the tables dropped after them.
    op.drop_index("ix_fills_run_id_time", table_name="fills")
    op.drop_index("ix_fills_order_id_time", table_name="fills")
    op.drop_table("fills")
    op.drop_index("ix_orders_decision_id", table_name="orders")
    op.drop_index("ix_orders_run_id_created_time", table_name="orders")
    op.drop_table("orders")
    op.drop_index("ix_decisions_order_id", table_name="decisions")
    op.drop_index("ix_decisions_run_id_time", table_name="decisions")
    op.drop_table("decisions")
    op.drop_index("ix_live_runs_started_at", table_name="live_runs")
    op.drop_table("live_runs")
