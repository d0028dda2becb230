"""Alembic's entry point. core.store.database hands over a connection in an open transaction (holding the
migration lock); without one (the `alembic` command, for writing a revision) it connects to DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from core.store import tables  # noqa: F401  (registers the tables on the metadata autogenerate compares with)


def _run(connection: Connection) -> None:
    # batch mode: SQLite cannot ALTER a column, so Alembic rebuilds the table (copy, drop, rename) there
    context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    given = context.config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    from core.settings import load_settings
    from core.store.database import make_engine

    engine = make_engine(load_settings().database_url)
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


main()
