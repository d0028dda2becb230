"""The database the console made before migrations existed (tests/fixtures/pre_jobs.db, written by the code of commit
e22652e: see tests/fixtures/make_pre_jobs_db.py), put where a test wants it, on the engine the run is for.

On SQLite it is the file itself. On PostgreSQL the same rows go into the schema the old code made there: the baseline
revision's tables, without any alembic_version, the serial sequences moved past the copied ids as they would be.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import MetaData, create_engine, inspect, text
from sqlalchemy.engine import Connection

from core.store import database as db
from tests.support import databases

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "pre_jobs.db"
FIXTURE_KEY = "m2Hk7wI0m3b1l3xOaI8sZ0c9Qd3d4mXWk2s7J5o6p8Y="  # the HALO_CONSOLE_SECRET_KEY it was made with
# parents before children, so foreign keys hold while copying
TABLES = ("partner", "connection", "customer", "agreement", "invoice", "autopayrule", "syncrun", "syncrecorderror",
          "cooldown", "auditevent", "user")


def fixture_rows() -> dict[str, list[dict[str, object]]]:
    """Every row of the fixture, by table, as the old code stored them."""
    engine = create_engine(f"sqlite:///file:{FIXTURE}?mode=ro&immutable=1&uri=true")  # no -wal/-shm beside it
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as conn:
            return {name: [dict(row._mapping) for row in conn.execute(metadata.tables[name].select()
                                                                      .order_by(metadata.tables[name].c.id))]
                    for name in TABLES}
    finally:
        engine.dispose()


def _baseline_schema(conn: Connection) -> None:
    """The tables as the pre-migration code created them: the baseline revision, then no trace of Alembic."""
    from alembic import command

    command.upgrade(db.alembic_config(conn), db.BASELINE)
    conn.execute(text("DROP TABLE alembic_version"))


def old_database(folder: Path, name: str = "old") -> str:
    """A URL of a copy of the pre-migration database, never opened by today's code."""
    if not databases.on_postgres():
        path = folder / f"{name}.db"
        shutil.copyfile(FIXTURE, path)
        return f"sqlite:///{path}"
    url = databases.database_url(folder, name, empty=True)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            _baseline_schema(conn)
            metadata = MetaData()
            metadata.reflect(conn)
            for table, rows in fixture_rows().items():
                if rows:
                    conn.execute(metadata.tables[table].insert(), rows)
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                                  f"(SELECT max(id) FROM \"{table}\"))"))
            assert "alembic_version" not in inspect(conn).get_table_names()
    finally:
        engine.dispose()
    return url
