"""Fresh databases for tests, on the engine the run is for: SQLite files by default, PostgreSQL when TEST_DATABASE_URL
names a server (`make test` starts a throwaway one with tests/support/pg_cluster.py).

On PostgreSQL each database is a copy of a template migrated once per test process (CREATE DATABASE … TEMPLATE:
~20 ms), so a test starts on an empty, current schema as it does on SQLite, where a migrated template file is copied.
A database made for a test is dropped when the test ends (conftest's autouse fixture); `lasting=True` keeps it to
the end of the session (module-scoped fixtures).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from core.settings import Settings
from core.store import database as db

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL") or None
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
_counter = itertools.count(1)
_admin: Engine | None = None
_template: str | None = None  # PostgreSQL: the migrated template's name; SQLite: the migrated template file
_per_test: list[str] = []
_lasting: list[str] = []
_made: dict[tuple[str, str], str] = {}  # (folder, name) -> PostgreSQL database


def on_postgres() -> bool:
    return TEST_DATABASE_URL is not None and make_url(TEST_DATABASE_URL).get_backend_name() == "postgresql"


def engine_name() -> str:
    return "postgresql" if on_postgres() else "sqlite"


def _url_of(name: str) -> str:
    assert TEST_DATABASE_URL is not None
    return make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)


def _admin_engine() -> Engine:
    global _admin
    if _admin is None:
        assert TEST_DATABASE_URL is not None
        _admin = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=2)
    return _admin


def _create(name: str, template: str | None) -> None:
    with _admin_engine().connect() as conn:
        if template is None:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            return
        # FILE_COPY (PostgreSQL 15+): a plain copy of the template's files, faster than WAL_LOG for small databases
        strategy = " STRATEGY FILE_COPY" if conn.dialect.server_version_info >= (15,) else ""
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{strategy}'))


def _drop(name: str) -> None:
    with _admin_engine().connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _pg_template() -> str:
    global _template
    if _template is None:
        name = f"halo_template_{WORKER}_{os.getpid()}"
        _drop(name)
        _create(name, None)
        db.engine_for(Settings(database_url=_url_of(name))).dispose()  # no session left: CREATE … TEMPLATE needs it
        _template = name
        _lasting.append(name)
    return _template


def _sqlite_template() -> Path:
    global _template
    if _template is None:
        folder = Path(tempfile.mkdtemp(prefix=f"halo-template-{WORKER}-"))
        path = folder / "console.db"
        db.engine_for(Settings(database_url=f"sqlite:///{path}")).dispose()  # the last close folds the WAL in
        _template = str(path)
    return Path(_template)


def database_url(folder: Path, name: str = "console", *, empty: bool = False, lasting: bool = False) -> str:
    """The URL of a database of a test's own, called `name`: a SQLite file in `folder` (not created: the code under
    test creates it, or `prepare` copies the migrated template there), or a new PostgreSQL database, migrated to the
    head revision unless `empty` (then without any table: made by the code under test). Asked again for the same
    folder and name, the same database."""
    if not on_postgres():
        return f"sqlite:///{folder / f'{name}.db'}"
    key = (str(folder), name)
    if key not in _made:
        database = f"t_{WORKER}_{os.getpid()}_{next(_counter)}_{name}"[:63].lower()
        _create(database, None if empty else _pg_template())
        (_lasting if lasting else _per_test).append(database)
        _made[key] = database
    return _url_of(_made[key])


def shared_database_env(folder: Path) -> dict[str, str]:
    """The environment of a process that fills a database all of the run's xdist workers then copy, kept in `folder`
    (which every worker sees): its DATABASE_URL, a SQLite file in `folder` or a PostgreSQL database named after
    `folder`, made empty here; on PostgreSQL also the encryption key, saved in `folder` for the copies (SQLite's key
    file lies beside its database, in `folder`, and travels with a copy of the folder)."""
    if not on_postgres():
        return {"DATABASE_URL": f"sqlite:///{folder / 'console.db'}"}
    name = _shared_name(folder)
    _drop(name)
    _create(name, None)
    key = Fernet.generate_key().decode()
    (folder / "secret-key.txt").write_text(key)
    return {"DATABASE_URL": _url_of(name), "HALO_CONSOLE_SECRET_KEY": key}


def copied_database_env(folder: Path, copy: Path) -> dict[str, str]:
    """The environment of a process on a private copy of the database `shared_database_env(folder)` filled: SQLite,
    the file in `copy`, a copy of `folder`; PostgreSQL, a new database made from it (dropped after the test)."""
    if not on_postgres():
        return {"DATABASE_URL": f"sqlite:///{copy / 'console.db'}"}
    name = f"t_{WORKER}_{os.getpid()}_{next(_counter)}_copy"
    _create(name, _shared_name(folder))
    _per_test.append(name)
    return {"DATABASE_URL": _url_of(name), "HALO_CONSOLE_SECRET_KEY": (folder / "secret-key.txt").read_text()}


def _shared_name(folder: Path) -> str:
    return "shared_" + hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:20]


def expression_engine() -> Engine:
    """An engine for evaluating SQL expressions (no tables) on the run's database engine: SQLite in memory, or the
    PostgreSQL server's own database. Connects on first use."""
    if not on_postgres():
        return db.make_engine("sqlite://")
    assert TEST_DATABASE_URL is not None
    return create_engine(TEST_DATABASE_URL, pool_size=1, max_overflow=1)


def prepare(settings: Settings) -> None:
    """Give a SQLite file the migrated template's copy if it does not exist yet (PostgreSQL databases come migrated):
    opening it is then the fast path, as for a console restarted on its database."""
    path = settings.sqlite_path
    if path is not None and not path.exists() and not on_postgres():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_sqlite_template(), path)


def _forget(database: str) -> None:
    for key in [key for key, made in _made.items() if made == database]:
        del _made[key]


def drop_test_databases() -> None:
    """Drop the PostgreSQL databases made for the test that just ended."""
    while _per_test:
        database = _per_test.pop()
        _forget(database)
        _drop(database)


def stored_contents(url: str) -> list[tuple[str, bytes]]:
    """Everything the database holds, as (where, bytes), to search for what must never be stored: on SQLite the
    files themselves (database, WAL, shared memory), on PostgreSQL every row of every table as text."""
    if make_url(url).get_backend_name() != "postgresql":
        path = Path(make_url(url).database or "")
        return [(p.name, p.read_bytes()) for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            names = conn.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).all()
            return [(name, "\n".join(conn.scalars(text(f'SELECT t::text FROM "{name}" AS t'))).encode())
                    for name in names]
    finally:
        engine.dispose()


def integrity_problems(url: str) -> list[str]:
    """What the engine's own consistency check finds wrong (nothing: []): SQLite's integrity_check; on PostgreSQL
    amcheck's B-tree check of every index of the schema, each against its table's rows."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                found = [str(row) for row in conn.scalars(text("PRAGMA integrity_check"))]
                return [] if found == ["ok"] else found
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS amcheck"))
            indexes = conn.execute(text(
                "SELECT c.oid, c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am a ON a.oid = c.relam "
                "WHERE n.nspname = 'public' AND a.amname = 'btree'")).all()
            problems = []
            for oid, name in indexes:
                try:
                    with conn.begin_nested():
                        conn.execute(text("SELECT bt_index_check(:oid, true)"), {"oid": oid})
                except Exception as exc:  # noqa: BLE001 - the finding is the result
                    problems.append(f"{name}: {exc}")
            return problems
    finally:
        engine.dispose()


def drop_all() -> None:
    """End of the session: drop everything this process made, the template included."""
    global _admin, _template
    drop_test_databases()
    if on_postgres():
        while _lasting:
            database = _lasting.pop()
            _forget(database)
            _drop(database)
    elif _template is not None:
        shutil.rmtree(Path(_template).parent, ignore_errors=True)
    if _admin is not None:
        _admin.dispose()
        _admin = None
    _template = None
