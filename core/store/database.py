"""One engine per database URL, brought to the newest schema on first use.

SQLite (WAL) is the embedded default; DATABASE_URL names anything else, PostgreSQL (psycopg 3) being the engine for
several consoles and workers sharing one database. The schema is Alembic's (core/store/migrations): every engine_for
upgrades the database it opens to the head revision, so a console, a worker or a CLI command started on an old
database upgrades it instead of failing on a missing column, and `python -m core migrate` does only that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect, select, text
from sqlalchemy.engine import Connection, CursorResult, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.pool import NullPool, StaticPool
from sqlmodel import create_engine

from core.errors import BadInput, ConsoleError
from core.settings import Settings
from core.store.tables import SETTING_TABLE  # (importing tables registers them on the metadata)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001_baseline"  # the schema of every database made before migrations existed
HEAD = "0014_reconciliation"  # the newest revision (a test checks it against the scripts)
MIGRATION_LOCK = 0x48414C4F4D494752  # "HALOMIGR": the PostgreSQL advisory lock one upgrade at a time holds
BUSY_TIMEOUT_MS = 30_000


class DatabaseError(ConsoleError):
    """The database could not be opened or upgraded (CLI exit 4); the message says where and why, without secrets."""

    exit_code = 4


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Checkpoint the WAL every ~40 MB rather than every 4 MB: a sync commits once per page, and each checkpoint
    # syncs the files to disk, which dominated a large backfill's database time on a busy disk.
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    cursor.close()


def _is_memory(url: str) -> bool:
    return url in ("sqlite://", "sqlite:///:memory:")


def normalized_url(url: str) -> str:
    """`postgresql://` and `postgres://` mean psycopg 3 (the driver installed), not SQLAlchemy's psycopg2 default."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10) -> Engine:
    """Create the engine for `url` (no schema work); SQLite files get WAL and a busy timeout so processes can share
    them; other databases get a pool of `pool_size` connections plus up to `max_overflow` more under load."""
    url = normalized_url(url)
    if _is_memory(url):
        engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
    elif url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000})
    else:
        return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow)
    event.listen(engine, "connect", _sqlite_pragmas)
    if url.startswith("sqlite:///") and not _is_memory(url):
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    return engine


def safe_url(url: str) -> str:
    """The URL as it may be shown: the password masked."""
    try:
        return make_url(normalized_url(url)).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unreadable DATABASE_URL)"


def _reason(exc: BaseException) -> str:
    """The driver's own words (no SQL, no parameters), on one line."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return lines[0] if lines else type(cause).__name__


def _revision_of(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision; None for a new database or one made before migrations."""
    with engine.connect() as conn:
        return _revision_of(conn)


@dataclass(frozen=True)
class Migration:
    before: str | None  # None: a new database, or one made before migrations (then `adopted`)
    after: str | None
    adopted: bool = False  # a pre-migration database was stamped with the baseline, then upgraded

    def describe(self) -> str:
        if self.before == self.after:
            return f"The database schema is up to date (revision {self.after})."
        start = ("the pre-migration schema (stamped " + BASELINE + ")" if self.adopted
                 else "an empty database" if self.before is None else f"revision {self.before}")
        return f"Upgraded the database schema from {start} to revision {self.after}."


def _sqlite_migration_engine(url: str) -> Engine:
    """A second engine on the same SQLite file whose transactions begin IMMEDIATE: the upgrade is one transaction
    (DDL included, which pysqlite would otherwise commit statement by statement) holding the write lock, so a second
    process starting at the same moment waits (busy timeout), then finds the schema current. Foreign keys stay off,
    as SQLite's table rebuilds in batch mode need."""
    engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    def connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the transaction is ours, not pysqlite's
        dbapi_connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    def begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", connect)
    event.listen(engine, "begin", begin)
    return engine


def alembic_config(conn: Connection) -> Any:
    """Alembic's configuration for running the packaged migrations on `conn`, in its open transaction."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def _upgrade(conn: Connection) -> Migration:
    """In the caller's transaction, which holds the migration lock: adopt a pre-migration database, then upgrade."""
    from alembic import command

    config = alembic_config(conn)
    before = _revision_of(conn)
    adopted = before is None and inspect(conn).has_table("partner")
    if before != HEAD:
        if adopted:
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")
    return Migration(before=before, after=_revision_of(conn), adopted=adopted)


def migrate(engine: Engine) -> Migration:
    """Bring the database behind `engine` to the head revision, one process at a time; raises DatabaseError."""
    url = engine.url.render_as_string(hide_password=False)
    try:
        if engine.dialect.name == "sqlite" and not _is_memory(url):
            migration_engine = _sqlite_migration_engine(url)
            try:
                with migration_engine.begin() as conn:
                    return _upgrade(conn)
            finally:
                migration_engine.dispose()
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":  # released when the transaction ends, however it ends
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            return _upgrade(conn)
    except ConsoleError:
        raise
    except Exception as exc:
        raise _upgrade_failure(exc, engine) from exc


def _upgrade_failure(exc: Exception, engine: Engine) -> DatabaseError:
    where = safe_url(engine.url.render_as_string(hide_password=False))
    from alembic.util import CommandError

    if isinstance(exc, CommandError) and "Can't locate revision" in str(exc):
        return DatabaseError(
            f"The database at {where} was upgraded by a newer version of the console ({_reason(exc)}). Run that "
            "version, or restore a backup made before the upgrade.")
    return DatabaseError(f"The database at {where} could not be upgraded to the current schema: {_reason(exc)}. "
                         "Nothing was changed; fix the cause, then run `python -m core migrate`.")


def _open(settings: Settings) -> Engine:
    try:
        return make_engine(settings.database_url, pool_size=settings.db_pool_size,
                           max_overflow=settings.db_max_overflow)
    except (ArgumentError, ImportError, ValueError) as exc:
        raise BadInput(f"DATABASE_URL is not a database address this console can use ({_reason(exc)}). Use e.g. "
                       "sqlite:///data/console.db or postgresql+psycopg://user@host:5432/console.",
                       field="database_url") from None
    except (OSError, SQLAlchemyError) as exc:
        raise DatabaseError(f"The database at {safe_url(settings.database_url)} could not be opened: "
                            f"{_reason(exc)}.") from exc


def engine_for(settings: Settings) -> Engine:
    """The engine the CLI, the worker and the app use, its database at the head revision (migrated if needed)."""
    engine = _open(settings)
    try:
        try:
            current = current_revision(engine)
        except (OSError, SQLAlchemyError) as exc:
            raise DatabaseError(f"The database at {safe_url(settings.database_url)} could not be opened: "
                                f"{_reason(exc)}.") from exc
        if current != HEAD:
            migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def migrate_database(settings: Settings) -> Migration:
    """`python -m core migrate`: upgrade the configured database and say from which revision to which."""
    engine = _open(settings)
    try:
        return migrate(engine)
    finally:
        engine.dispose()


def stored_setting(engine: Engine, key: str, first: Callable[[], str]) -> str:
    """The value the setting table holds for `key`; when it holds none yet, `first()` is stored and returned. Stored
    once: processes racing to store it all get the one that won."""
    query = select(SETTING_TABLE.c.value).where(SETTING_TABLE.c.key == key)
    with engine.connect() as conn:
        value = conn.scalar(query)
    if value is not None:
        return str(value)
    candidate = first()
    try:
        with engine.begin() as conn:
            conn.execute(SETTING_TABLE.insert().values(key=key, value=candidate))
        return candidate
    except IntegrityError:  # another process stored it first
        with engine.connect() as conn:
            value = conn.scalar(query)
        if value is None:
            raise
        return str(value)


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key of the one row an INSERT made."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the INSERT returned no primary key")
    return int(key[0])
