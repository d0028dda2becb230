"""One engine per database URL and one session scope. SQLite (WAL) by default; DATABASE_URL for anything else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.pool import StaticPool
from sqlmodel import SQLModel, create_engine

from core.settings import Settings
from core.store import tables  # noqa: F401  (registers the tables before create_all)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Checkpoint the WAL every ~40 MB rather than every 4 MB: a sync commits once per page, and each checkpoint
    # syncs the files to disk, which dominated a large backfill's database time on a busy disk.
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create the engine for `url`; SQLite files get WAL and a busy timeout so processes can share them."""
    if url in ("sqlite://", "sqlite:///:memory:"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
    elif url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    else:
        return create_engine(url, pool_pre_ping=True)
    event.listen(engine, "connect", _sqlite_pragmas)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    return engine


def init_db(engine: Engine) -> None:
    SQLModel.metadata.create_all(engine)


def engine_for(settings: Settings) -> Engine:
    """The engine the CLI and the app use: created and migrated on first use."""
    engine = make_engine(settings.database_url)
    init_db(engine)
    return engine



def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key of the one row an INSERT made."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the INSERT returned no primary key")
    return int(key[0])
