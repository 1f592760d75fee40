"""Run the store's Alembic migrations from code, with no ``alembic.ini`` in the working directory."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from alphaloop.core.errors import StoreError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Any constant works; it only has to be the same for every process migrating this database.
_PG_LOCK_KEY = 0x616C7068616C6F6F  # "alphaloo"


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations (for upgrade, downgrade, autogenerate)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return cfg


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision this version of alphaloop knows."""
    return _script().get_current_head() or ""


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` in one transaction.

    An up-to-date database is only read (no lock, no write), so opening a store stays cheap and
    works for read-only users. Otherwise, on PostgreSQL an advisory lock serialises processes that
    open a fresh database at the same time; on SQLite ``BEGIN IMMEDIATE`` does the same and makes
    the DDL atomic (the driver would otherwise run it outside any transaction).
    """
    if revision == "head":
        current = current_revision(engine)
        if current is not None and current == head_revision():
            return
        if current is not None and _known(current) is False:
            raise StoreError(f"database schema is at revision {current}, newer than this alphaloop knows "
                             f"(head {head_revision()}); upgrade alphaloop")
    _run(engine, lambda cfg: command.upgrade(cfg, revision))


def downgrade(engine: Engine, revision: str) -> None:
    """Step the database back to ``revision`` (``"base"`` drops every table)."""
    _run(engine, lambda cfg: command.downgrade(cfg, revision))


def _known(revision: str) -> bool:
    try:
        return _script().get_revision(revision) is not None
    except Exception:  # alembic raises its own ResolutionError/CommandError for unknown ids
        return False


def _run(engine: Engine, step: Callable[[Config], None]) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        elif conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        step(cfg)
