"""Alembic migrations of the alphaloop store (run by ``alphaloop.store.migrate``)."""
