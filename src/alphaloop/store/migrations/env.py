"""Alembic environment for the alphaloop store.

Normally run through :func:`alphaloop.store.migrate.upgrade`, which hands over an open connection in
``config.attributes["connection"]`` so no ``alembic.ini`` or URL is needed. Running the ``alembic``
command against ``migrations/alembic.ini`` also works: the URL then comes from
``-x url=...`` or ``$ALPHALOOP_DATABASE_URL``.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine, pool

import alphaloop.store.feedback_models  # noqa: F401  (its tables join Base.metadata)
from alphaloop.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode rebuilds tables so later revisions work there too.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("ALPHALOOP_DATABASE_URL")
    if not url:
        raise SystemExit("alphaloop migrations: pass -x url=DATABASE_URL or set ALPHALOOP_DATABASE_URL")
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("alphaloop migrations run online only (they need the database's dialect)")
_run_online()
