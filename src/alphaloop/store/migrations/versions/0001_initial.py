"""Initial schema: strategies, their status events, backtest runs, trades and equity curves.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written by hand (types spelled out rather than imported from the models, so this file keeps
describing revision 0001 when the models move on); the migration test checks it against
``alphaloop.store.models`` on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    # Timezone-aware: timestamptz on PostgreSQL; SQLite keeps naive UTC text (see models.UTCDateTime).
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _real(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.Double(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "strategies",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("spec_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _real("composite_score"),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_strategies"),
        sa.UniqueConstraint("spec_key", name="uq_strategies_spec_key"),
        sa.CheckConstraint("status IN ('candidate', 'active', 'inactive')", name="ck_strategies_status"),
    )
    op.create_index("ix_strategies_status", "strategies", ["status"])

    op.create_table(
        "strategy_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("strategy_id", sa.String(64), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_strategy_events"),
        sa.ForeignKeyConstraint(["strategy_id"], ["strategies.id"], ondelete="CASCADE",
                                name="fk_strategy_events_strategy_id_strategies"),
    )
    op.create_index("ix_strategy_events_strategy_id", "strategy_events", ["strategy_id", "id"])

    op.create_table(
        "backtest_runs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("strategy_id", sa.String(64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("data_source", sa.Text(), nullable=False),
        sa.Column("instruments", sa.JSON(), nullable=False),
        _ts("start"),
        _ts("end"),
        sa.Column("n_bars", sa.Integer(), nullable=False),
        _real("initial_cash", nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        _real("final_equity"),
        _real("return_pct"),
        _real("sharpe"),
        _real("max_drawdown_pct"),
        sa.Column("n_trades", sa.Integer(), nullable=False),
        sa.Column("n_orders", sa.Integer(), nullable=False),
        sa.Column("n_fills", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(128), nullable=False),
        _real("backtest_score"),
        _real("ml_confidence"),
        _real("composite_score"),
        sa.Column("ml_feedback_submitted", sa.Boolean(), server_default=sa.false(), nullable=False),
        _ts("feedback_submitted_at", nullable=True),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_backtest_runs"),
        sa.ForeignKeyConstraint(["strategy_id"], ["strategies.id"], ondelete="RESTRICT",
                                name="fk_backtest_runs_strategy_id_strategies"),
    )
    op.create_index("ix_backtest_runs_strategy_id", "backtest_runs", ["strategy_id"])
    op.create_index("ix_backtest_runs_created_at", "backtest_runs", ["created_at"])
    op.create_index("ix_backtest_runs_composite_score", "backtest_runs", ["composite_score"])
    op.create_index("ix_backtest_runs_sharpe", "backtest_runs", ["sharpe"])
    op.create_index("ix_backtest_runs_return_pct", "backtest_runs", ["return_pct"])
    op.create_index("ix_backtest_runs_unprocessed", "backtest_runs", ["ml_feedback_submitted", "created_at"])

    op.create_table(
        "backtest_trades",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.Column("instrument", sa.Text(), nullable=False),
        _real("size", nullable=False),
        sa.Column("entry_bar", sa.Integer(), nullable=False),
        sa.Column("exit_bar", sa.Integer(), nullable=True),
        _ts("entry_time"),
        _ts("exit_time", nullable=True),
        _real("entry_price", nullable=False),
        _real("exit_price"),
        _real("pnl"),
        _real("return_pct"),
        _real("commission", nullable=False),
        sa.Column("tag", sa.Text(), nullable=True),
        sa.Column("exit_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "seq", name="pk_backtest_trades"),
        sa.ForeignKeyConstraint(["run_id"], ["backtest_runs.id"], ondelete="CASCADE",
                                name="fk_backtest_trades_run_id_backtest_runs"),
    )

    op.create_table(
        "equity_curves",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("time_unit", sa.String(2), nullable=False),
        sa.Column("times", sa.LargeBinary(), nullable=False),
        sa.Column("equity", sa.LargeBinary(), nullable=False),
        sa.Column("cash", sa.LargeBinary(), nullable=True),
        sa.Column("drawdown_pct", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_equity_curves"),
        sa.ForeignKeyConstraint(["run_id"], ["backtest_runs.id"], ondelete="CASCADE",
                                name="fk_equity_curves_run_id_backtest_runs"),
    )


def downgrade() -> None:
    # Children first: foreign keys point at the tables dropped after them.
    op.drop_table("equity_curves")
    op.drop_table("backtest_trades")
    op.drop_index("ix_backtest_runs_unprocessed", table_name="backtest_runs")
    op.drop_index("ix_backtest_runs_return_pct", table_name="backtest_runs")
    op.drop_index("ix_backtest_runs_sharpe", table_name="backtest_runs")
    op.drop_index("ix_backtest_runs_composite_score", table_name="backtest_runs")
    op.drop_index("ix_backtest_runs_created_at", table_name="backtest_runs")
    op.drop_index("ix_backtest_runs_strategy_id", table_name="backtest_runs")
    op.drop_table("backtest_runs")
    op.drop_index("ix_strategy_events_strategy_id", table_name="strategy_events")
    op.drop_table("strategy_events")
    op.drop_index("ix_strategies_status", table_name="strategies")
    op.drop_table("strategies")
