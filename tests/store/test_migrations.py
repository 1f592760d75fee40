"""The Alembic migrations build exactly the schema the ORM models declare, on both backends."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Index, Integer, MetaData, inspect, text

import alphaloop.store.feedback_models  # noqa: F401  (registers the feedback tables on Base.metadata)
from alphaloop.core.errors import StoreError
from alphaloop.store import Store, migrate
from alphaloop.store.migrate import MIGRATIONS_DIR, alembic_config, downgrade, upgrade
from alphaloop.store.models import Base

HEAD = "0006"


def schema_diff(store: Store, metadata: MetaData = Base.metadata) -> list:
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return compare_metadata(ctx, metadata)


def current_revision(store: Store) -> str | None:
    return migrate.current_revision(store.engine)


def test_one_head_and_packaged_files() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [HEAD]
    assert (MIGRATIONS_DIR / "env.py").is_file()


def test_migrated_schema_equals_models(store: Store) -> None:
    assert current_revision(store) == HEAD
    assert schema_diff(store) == []
    tables = set(inspect(store.engine).get_table_names())
    assert tables == {t.name for t in Base.metadata.sorted_tables} | {"alembic_version"}


def test_downgrade_to_base_and_upgrade_again(store: Store, make_result) -> None:
    downgrade(store.engine, "base")
    assert set(inspect(store.engine).get_table_names()) == {"alembic_version"}
    assert current_revision(store) is None
    upgrade(store.engine)
    assert current_revision(store) == HEAD
    assert schema_diff(store) == []
    store.save_backtest(make_result())  # and the rebuilt schema works


def test_reopening_keeps_data(store_url: str, make_result) -> None:
    with Store(store_url) as first:
        run_id = first.save_backtest(make_result())
    with Store(store_url) as second:  # upgrade head on an up-to-date database is a no-op
        assert second.get_run(run_id).run_id == run_id
        assert current_revision(second) == HEAD


def test_open_without_migrating(store_url: str, make_result) -> None:
    with Store(store_url) as migrated:
        run_id = migrated.save_backtest(make_result())
    with Store(store_url, migrate=False) as reader:
        assert [r.run_id for r in reader.list_runs()] == [run_id]


def test_the_comparison_sees_drift(store: Store) -> None:
    """Guard against a vacuous check: a model the migration does not match must show up in the diff."""
    drifted = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(drifted)
    runs = drifted.tables["backtest_runs"]
    runs.append_column(Column("sortino", Integer(), nullable=True))
    Index("ix_backtest_runs_fingerprint", runs.c.fingerprint)
    diff = schema_diff(store, drifted)
    kinds = sorted(d[0] for d in diff)
    assert kinds == ["add_column", "add_index"], diff


def test_newer_schema_than_the_code_is_refused(store_url: str) -> None:
    with Store(store_url) as store:
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        try:
            with pytest.raises(StoreError, match="revision 9999, newer than this alphaloop knows"):
                Store(store_url)
        finally:  # the PostgreSQL database is shared by the whole session
            with store.engine.begin() as conn:
                conn.execute(text(f"UPDATE alembic_version SET version_num = '{HEAD}'"))
