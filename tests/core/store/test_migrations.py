"""Migrations: a database made before them upgrades with every row, a new one is made by them, both end with the
schema of core/store/tables.py, and opening a database at once from several processes, or a broken one, is safe."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Column,
    ForeignKeyConstraint,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from core.demo import sandbox
from core.errors import BadInput
from core.settings import PROJECT_ROOT, Settings, settings_from_mapping
from core.store import database as db
from core.store import tables
from core.store.secrets import SecretBox
from tests.support import databases
from tests.support.clock import NOW
from tests.support.old_databases import FIXTURE_KEY, TABLES, fixture_rows, old_database

NEW_TABLES = {"job", "setting", "rateslot", "consolesession", "signinthrottle", "listingchoice", "subtypelookup",
              "subtypename", "tenantprobe", "issue", "issueevent", "alertdelivery", "runday", "fleetrunday",
              "reconciliation", "driftitem"}
NEW_COLUMNS = {"syncrun": {"job_id", "message", "waiting_until", "retries", "rate_limited"},
               "cooldown": {"last_job_id"}, "connection": {"numbered_by"},
               "autopayrule": {"subtype_id", "overdue_opt_in"}}
BIGINT_COLUMNS = {"customer": {"halo_id"}, "agreement": {"halo_id", "customer_halo_id", "subtype_id"},
                  "invoice": {"halo_id", "customer_halo_id", "agreement_halo_id", "total_cents", "amount_paid_cents",
                              "amount_due_cents"},
                  "autopayrule": {"max_amount_cents"}, "syncrecorderror": {"halo_id"}}
ADDED_BIGINT_COLUMNS = {("autopayrule", "subtype_id"), ("subtypename", "subtype_id")}


def _settings(url: str) -> Settings:
    return Settings(database_url=url, secret_key=FIXTURE_KEY, fixed_now=NOW)


def schema_differences(engine: Engine) -> list[object]:
    """What Alembic's autogenerate would change to make the database match tables.py (types compared)."""
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                     SQLModel.metadata))


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(tables.SQLModel.metadata.tables[table])) or 0)


def test_head_is_the_one_head_of_the_scripts_and_the_baseline_its_root():
    scripts = ScriptDirectory(str(db.MIGRATIONS))
    assert scripts.get_heads() == [db.HEAD]
    assert [script.revision for script in scripts.walk_revisions()][-1] == db.BASELINE
    assert (db.MIGRATIONS / "script.py.mako").exists()  # `alembic revision` works from the packaged folder


def test_a_database_made_before_migrations_keeps_every_row_and_gains_the_new_schema(tmp_path):
    url = old_database(tmp_path)
    before = fixture_rows()
    engine = db.engine_for(_settings(url))
    try:
        assert db.current_revision(engine) == db.HEAD
        for table in TABLES:
            assert _count(engine, table) == len(before[table]), table
        with engine.connect() as conn:
            inspector = inspect(conn)
            assert set(inspector.get_table_names()) >= NEW_TABLES
            for table, columns in NEW_COLUMNS.items():
                assert columns <= {c["name"] for c in inspector.get_columns(table)}, table
            partners = conn.execute(select(tables.PARTNER_TABLE.c.id, tables.PARTNER_TABLE.c.name,
                                           tables.PARTNER_TABLE.c.status).order_by(tables.PARTNER_TABLE.c.id)).all()
            invoices = {row.id: row for row in conn.execute(select(tables.INVOICE_TABLE))}
            rule = conn.execute(select(tables.RULE_TABLE)).one()
            rejected = conn.execute(select(tables.ERROR_TABLE)).one()
            runs = conn.execute(select(tables.RUN_TABLE.c.status, func.count()).group_by(tables.RUN_TABLE.c.status)
                                ).all()
            secrets = conn.scalars(select(tables.CONNECTION_TABLE.c.client_secret_encrypted)
                                   .order_by(tables.CONNECTION_TABLE.c.partner_id)).all()
            numbering = conn.execute(select(tables.CONNECTION_TABLE.c.invoice_number_field,
                                            tables.CONNECTION_TABLE.c.numbered_by)
                                     .order_by(tables.CONNECTION_TABLE.c.partner_id)).all()
            new_columns = conn.execute(select(tables.RUN_TABLE.c.job_id, tables.RUN_TABLE.c.message,
                                              tables.RUN_TABLE.c.waiting_until)).all()
        assert [(p.id, p.name, p.status) for p in partners] == [(1, "Acme IT", "connected"), (2, "Globex", "connected"),
                                                                 (3, "Initech", "connected")]
        old_invoice = before["invoice"][0]
        assert invoices[old_invoice["id"]].total_cents == old_invoice["total_cents"]
        assert invoices[old_invoice["id"]].display_number == old_invoice["display_number"]
        assert invoices[old_invoice["id"]].synced_at == old_invoice["synced_at"].replace(tzinfo=UTC)
        due = sum(i.amount_due_cents for i in invoices.values())
        assert due == sum(i["amount_due_cents"] for i in before["invoice"])
        assert (rule.subtype_name, rule.subtype_id, rule.trigger, rule.days, rule.max_amount_cents) == (
            "Managed Services", 1, "days_after_due", 3, 250_000)
        assert rejected.halo_id == 2**31 - 1 and rejected.reason == "total is not a number"
        assert dict(runs) == {"succeeded": 116, "failed": 25}
        box = SecretBox(FIXTURE_KEY)
        assert [box.decrypt(token) for token in secrets] == [sandbox.credentials(host)[1] for host in
                                                            ("acme.sandbox", "globex.sandbox", "initech.sandbox")]
        assert new_columns and all(row == (None, None, None) for row in new_columns)
        # stored invoices were numbered by the chosen field: they stay so, and no renumbering is due
        assert [tuple(row) for row in numbering] == [("third_party", "third_party"), ("halo_id", "halo_id"),
                                                    ("halo_id", "halo_id")]
        assert schema_differences(engine) == []
        # the widened columns take what INTEGER could not, and new rows follow the old ids
        with engine.begin() as conn:
            conn.execute(tables.INVOICE_TABLE.insert().values(
                partner_id=1, halo_id=2**40, display_number="BIG", number_is_fallback=False, total_cents=3 * 2**31,
                amount_paid_cents=0, amount_due_cents=3 * 2**31, posted=True, voided=False, status="unpaid",
                synced_at=NOW))
            biggest = conn.execute(select(tables.INVOICE_TABLE.c.id, tables.INVOICE_TABLE.c.total_cents)
                                   .where(tables.INVOICE_TABLE.c.halo_id == 2**40)).one()
        assert biggest.total_cents == 3 * 2**31 and biggest.id == max(invoices) + 1
    finally:
        engine.dispose()


def _subtypes_by_name(conn: Connection) -> None:
    """The agreement and auto-pay rule tables as they were before 0007: a subtype name on each agreement, rules
    unique by that name."""
    shapes = MetaData()
    tables.PARTNER_TABLE.to_metadata(shapes)
    agreement = tables.AGREEMENT_TABLE.to_metadata(shapes)
    agreement.append_column(Column("subtype_name", String(), nullable=True))
    rule = Table("autopayrule", shapes, *(Column(column.name, column.type, primary_key=column.primary_key,
                                                 nullable=column.nullable or column.name == "subtype_name")
                                          for column in tables.RULE_TABLE.columns
                                          if column.name not in ("subtype_id", "overdue_opt_in")),
                 ForeignKeyConstraint(["partner_id"], ["partner.id"]), UniqueConstraint("partner_id", "subtype_name"))
    rule.c.subtype_name.nullable = False
    shapes.create_all(conn, tables=[agreement, rule])


@pytest.mark.parametrize("made_by", ["opened", "created"])
def test_a_database_the_job_queue_code_made_without_migrations_is_adopted_too(tmp_path, made_by):
    """The code just before migrations (commit 9fa231d) ran create_all: a database it only opened gained the job table
    (no new columns), one it created has every table but the setting table; both upgrade, keeping what exists."""
    if made_by == "opened":
        url = old_database(tmp_path)
        engine = create_engine(url)
        with engine.begin() as conn:
            tables.JOB_TABLE.create(conn)
    else:
        url = databases.database_url(tmp_path, "by_create_all", empty=True)
        engine = create_engine(url)
        with engine.begin() as conn:
            SQLModel.metadata.create_all(conn, tables=[table for name, table in SQLModel.metadata.tables.items()
                                                       if name not in ("setting", "rateslot", "consolesession",
                                                                        "signinthrottle", "listingchoice",
                                                                        "subtypelookup", "subtypename", "agreement",
                                                                        "autopayrule", "tenantprobe", "issue",
                                                                        "issueevent", "alertdelivery", "runday",
                                                                        "fleetrunday", "reconciliation",
                                                                        "driftitem")])
            _subtypes_by_name(conn)
            conn.exec_driver_sql("ALTER TABLE connection DROP COLUMN numbered_by")  # these came later too
            for counter in ("retries", "rate_limited"):
                conn.exec_driver_sql(f"ALTER TABLE syncrun DROP COLUMN {counter}")
            for later in ("ix_syncrun_started_totals", "ix_syncrun_finished", "ix_invoice_status_currency",
                          "ix_invoice_partner_number", "ix_invoice_partner_third_party"):
                conn.exec_driver_sql(f"DROP INDEX {later}")
    engine.dispose()
    engine = db.engine_for(_settings(url))
    try:
        assert db.current_revision(engine) == db.HEAD
        assert schema_differences(engine) == []
        if made_by == "opened":
            assert _count(engine, "invoice") == len(fixture_rows()["invoice"])
    finally:
        engine.dispose()


def test_a_new_database_is_made_by_the_migrations_with_the_schema_of_tables_py(tmp_path):
    url = databases.database_url(tmp_path, "fresh", empty=True)
    engine = db.engine_for(_settings(url))
    try:
        assert db.current_revision(engine) == db.HEAD
        assert schema_differences(engine) == []
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == {*SQLModel.metadata.tables, "alembic_version"}
            bigint = {(table, column["name"]) for table in {*BIGINT_COLUMNS, "subtypename"}
                      for column in inspect(conn).get_columns(table) if "BIGINT" in str(column["type"]).upper()}
        assert bigint == {(table, name) for table, names in BIGINT_COLUMNS.items() for name in names} | \
            ADDED_BIGINT_COLUMNS
    finally:
        engine.dispose()


def test_the_schema_comparison_sees_what_the_upgrade_adds(tmp_path):
    """An empty difference above means something: at the baseline, the comparison lists the new table and types."""
    url = databases.database_url(tmp_path, "base", empty=True)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(db.alembic_config(conn), db.BASELINE)
        differences = schema_differences(engine)
        added = {diff[1].name for diff in differences if isinstance(diff, tuple) and diff[0] == "add_table"}
        retyped = {(change[2], change[3]) for diff in differences if isinstance(diff, list)
                   for change in diff if change[0] == "modify_type"}
        assert added == NEW_TABLES
        assert retyped == {(table, column) for table, columns in BIGINT_COLUMNS.items() for column in columns}
        with engine.begin() as conn:  # and the downgrade of the second revision returns there
            command.upgrade(db.alembic_config(conn), "head")
            command.downgrade(db.alembic_config(conn), db.BASELINE)
        assert repr(schema_differences(engine)) == repr(differences)
    finally:
        engine.dispose()


AGREEMENTS_AT_0006 = [  # (partner, subtype id, the subtype name the old code stored)
    (1, 1, "Managed Services"), (1, 1, "Managed Services"), (1, 2, "Backup"), (1, 3, "Backup"), (1, 4, "Subtype 4"),
    (1, None, None), (1, 5, None), (2, 1, "Managed Services"), (2, 7, "Cloud"),
]
RULES_AT_0006 = [(1, "Managed Services"), (1, "Backup"), (1, "Subtype 4"), (1, "Gone"), (2, "Managed Services")]


@contextmanager
def _database_at(tmp_path: Path, revision: str) -> Iterator[tuple[str, Connection]]:
    """A new database upgraded to `revision`, holding partners 1 (Acme IT) and 2 (Globex): its URL, and a connection
    for the block to add rows with (committed when the block ends)."""
    url = databases.database_url(tmp_path, f"at_{revision[:4]}", empty=True)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(db.alembic_config(conn), revision)
            for partner_id, name in ((1, "Acme IT"), (2, "Globex")):
                conn.execute(text("INSERT INTO partner (id, name, status, created_at) VALUES (:id, :name, "
                                  "'connected', :at)"), {"id": partner_id, "name": name, "at": NOW})
            yield url, conn
    finally:
        engine.dispose()


def _database_at_0006(tmp_path: Path) -> str:
    """A database at the revision before 0007, with agreements and auto-pay rules keyed by subtype name."""
    with _database_at(tmp_path, "0006_listing_methods") as (url, conn):
        conn.execute(text("INSERT INTO agreement (partner_id, halo_id, subtype_id, subtype_name, active, "
                          "synced_at) VALUES (:partner, :halo_id, :subtype_id, :name, true, :at)"),
                     [{"partner": partner, "halo_id": number, "subtype_id": subtype_id, "name": name, "at": NOW}
                      for number, (partner, subtype_id, name) in enumerate(AGREEMENTS_AT_0006, start=1)])
        conn.execute(text("INSERT INTO autopayrule (partner_id, subtype_name, enabled, trigger, days, created_by, "
                          "created_at, updated_at) VALUES (:partner, :name, true, 'on_due_date', 0, 'cs', :at, :at)"),
                     [{"partner": partner, "name": name, "at": NOW} for partner, name in RULES_AT_0006])
    return url


def test_upgrading_to_subtype_ids_keeps_every_rule_and_maps_those_whose_name_named_one_subtype(tmp_path):
    url = _database_at_0006(tmp_path)
    engine = db.engine_for(_settings(url))
    try:
        assert db.current_revision(engine) == db.HEAD
        assert schema_differences(engine) == []
        with engine.connect() as conn:
            rules = conn.execute(select(tables.RULE_TABLE.c.partner_id, tables.RULE_TABLE.c.subtype_name,
                                        tables.RULE_TABLE.c.subtype_id)).all()
            agreements = conn.execute(select(tables.AGREEMENT_TABLE.c.partner_id, tables.AGREEMENT_TABLE.c.subtype_id)
                                      .order_by(tables.AGREEMENT_TABLE.c.halo_id)).all()
            names = conn.execute(select(tables.SUBTYPE_NAME_TABLE)).all()
        assert sorted(rules, key=repr) == sorted([
            (1, "Managed Services", 1),
            (1, "Backup", None),  # two subtypes (2 and 3) were called so: it waits for its subtype to be picked again
            (1, "Subtype 4", 4),
            (1, "Gone", None),  # no synced agreement had that name
            (2, "Managed Services", 1),
        ], key=repr)
        assert [tuple(row) for row in agreements] == [(partner, subtype_id) for partner, subtype_id, _ in
                                                      AGREEMENTS_AT_0006]
        # the names agreements had are kept, marked not verified ("Subtype 4" was the stand-in for no name)
        assert sorted((n.partner_id, n.subtype_id, n.lookup_name, n.lookup_verified, n.override_name)
                      for n in names) == [(1, 1, "Managed Services", False, None), (1, 2, "Backup", False, None),
                                          (1, 3, "Backup", False, None), (2, 1, "Managed Services", False, None),
                                          (2, 7, "Cloud", False, None)]
        with engine.begin() as conn, pytest.raises(IntegrityError):  # one rule per subtype id now
            conn.execute(tables.RULE_TABLE.insert().values(partner_id=1, subtype_id=1, subtype_name="Other label",
                                                           created_by="cs", created_at=NOW, updated_at=NOW))
    finally:
        engine.dispose()


RULES_AT_0008 = [  # (partner, subtype id, label, enabled, trigger, days, maximum in cents)
    (1, 1, "Managed Services", True, "on_due_date", 0, None), (1, 2, "Backup", False, "days_after_due", 3, 250_000),
    (1, None, "Gone", True, "days_after_invoice", 30, None), (2, 1, "Managed Services", True, "on_due_date", 0, 100),
]


def test_upgrading_to_the_overdue_opt_in_keeps_every_rule_and_opts_none_in(tmp_path):
    """0009: every rule keeps its row and terms; none charges long-overdue invoices until someone opts it in."""
    with _database_at(tmp_path, "0008_tenant_probes") as (url, conn):
        conn.execute(text("INSERT INTO autopayrule (partner_id, subtype_id, subtype_name, enabled, trigger, days, "
                          "max_amount_cents, created_by, created_at, updated_at) VALUES (:partner, :subtype, :label, "
                          ":enabled, :trigger, :days, :cents, 'cs', :at, :at)"),
                     [dict(zip(("partner", "subtype", "label", "enabled", "trigger", "days", "cents"), row,
                               strict=True), at=NOW) for row in RULES_AT_0008])
    engine = db.engine_for(_settings(url))
    try:
        assert db.current_revision(engine) == db.HEAD
        assert schema_differences(engine) == []
        rule = tables.RULE_TABLE.c
        with engine.connect() as conn:
            rows = conn.execute(select(rule.partner_id, rule.subtype_id, rule.subtype_name, rule.enabled, rule.trigger,
                                       rule.days, rule.max_amount_cents, rule.overdue_opt_in).order_by(rule.id)).all()
        assert [tuple(row) for row in rows] == [(*row, False) for row in RULES_AT_0008]
        with engine.begin() as conn, pytest.raises(IntegrityError):  # still one rule per partner and subtype id
            conn.execute(tables.RULE_TABLE.insert().values(partner_id=1, subtype_id=1, created_by="cs", created_at=NOW,
                                                           updated_at=NOW))
    finally:
        engine.dispose()


def test_the_reconciliation_tables_come_with_0014_and_go_with_its_downgrade(tmp_path):
    with _database_at(tmp_path, "0013_invoice_numbers") as (url, conn):
        assert not {"reconciliation", "driftitem"} & set(inspect(conn).get_table_names())
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(db.alembic_config(conn), "0014_reconciliation")
            assert {"reconciliation", "driftitem"} <= set(inspect(conn).get_table_names())
            assert "BIGINT" in str({c["name"]: c["type"] for c in inspect(conn).get_columns("driftitem")}["halo_id"])
        assert schema_differences(engine) == []
        with engine.begin() as conn:
            command.downgrade(db.alembic_config(conn), "0013_invoice_numbers")
            assert not {"reconciliation", "driftitem"} & set(inspect(conn).get_table_names())
            assert conn.scalar(text("SELECT count(*) FROM partner")) == 2  # what was there stays
    finally:
        engine.dispose()


def test_opening_a_current_database_changes_nothing(engine):
    assert db.current_revision(engine) == db.HEAD
    migration = db.migrate(engine)
    assert (migration.before, migration.after, migration.adopted) == (db.HEAD, db.HEAD, False)
    assert "up to date" in migration.describe()


def _open(url: str, start: multiprocessing.synchronize.Event) -> str:
    start.wait()
    try:
        engine = db.engine_for(Settings(database_url=url))
        try:
            return str(db.current_revision(engine))
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return f"error {exc!r}"


@pytest.mark.parametrize("made_before", [False, True], ids=["new", "pre-migration"])
def test_processes_opening_a_database_at_once_all_get_it_upgraded(tmp_path, made_before):
    url = old_database(tmp_path) if made_before else databases.database_url(tmp_path, "race", empty=True)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Event()
        with ctx.Pool(4) as pool:
            pending = [pool.apply_async(_open, (url, start)) for _ in range(4)]
            start.set()
            outcomes = [p.get(timeout=120) for p in pending]
    assert outcomes == [db.HEAD] * 4
    engine = db.engine_for(Settings(database_url=url))
    try:
        assert schema_differences(engine) == []
        if made_before:
            assert _count(engine, "invoice") == len(fixture_rows()["invoice"])
    finally:
        engine.dispose()


def _cli(cwd: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALO_") and k != "DATABASE_URL"}
    env.update(DATABASE_URL=url, HALO_CONSOLE_SECRET_KEY=FIXTURE_KEY, PYTHONPATH=str(PROJECT_ROOT))
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def test_python_m_core_migrate_upgrades_from_any_folder_and_says_from_which_revision_to_which(tmp_path):
    url = old_database(tmp_path)
    first = _cli(tmp_path, url, "migrate")  # run outside the project: the migrations ship inside the package
    assert first.returncode == 0, first.stderr
    assert f"before: none (pre-migration schema, stamped {db.BASELINE})" in first.stdout
    assert f"after: {db.HEAD}" in first.stdout
    second = _cli(tmp_path, url, "migrate")
    assert second.returncode == 0, second.stderr
    assert f"before: {db.HEAD}" in second.stdout and f"after: {db.HEAD}" in second.stdout
    status = _cli(tmp_path, url, "status", "--partner", "Acme IT", "--json")  # and the console reads it
    assert status.returncode == 0, status.stderr
    assert '"invoices": ' in status.stdout


def test_a_database_from_a_newer_console_is_refused_with_what_to_do(tmp_path):
    url = databases.database_url(tmp_path, "newer")
    engine = db.engine_for(_settings(url))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    engine.dispose()
    with pytest.raises(db.DatabaseError, match="newer version of the console") as raised:
        db.engine_for(_settings(url))
    assert raised.value.exit_code == 4
    done = _cli(tmp_path, url, "migrate")
    assert done.returncode == 4 and "newer version of the console" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("url", "error", "code"), [
    ("postgresql+psycopg://nobody@127.0.0.1:1/console", db.DatabaseError, 4),
    ("nosuchdb://somewhere/console", BadInput, 2),
])
def test_an_unusable_database_url_is_a_readable_error_and_exit_code(tmp_path, url, error, code):
    with pytest.raises(error) as raised:
        db.engine_for(Settings(database_url=url))
    assert raised.value.exit_code == code
    assert ("could not be opened" if code == 4 else "DATABASE_URL") in raised.value.message
    done = _cli(tmp_path, url, "status", "--partner", "Acme")
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.strip()


def test_the_password_of_a_database_url_is_never_shown():
    with pytest.raises(db.DatabaseError) as raised:
        db.engine_for(Settings(database_url="postgresql://console:hunter2-secret@127.0.0.1:1/console"))
    assert "hunter2-secret" not in raised.value.message and "***" in raised.value.message


def test_pool_sizes_come_from_the_environment_and_postgresql_urls_mean_psycopg_3():
    settings = settings_from_mapping({"DATABASE_URL": "postgresql://console@db.example:5432/console",
                                      "HALO_DB_POOL_SIZE": "12", "HALO_DB_MAX_OVERFLOW": "3"})
    assert (settings.db_pool_size, settings.db_max_overflow) == (12, 3)
    assert (Settings().db_pool_size, Settings().db_max_overflow) == (5, 10)
    engine = db.make_engine(settings.database_url, pool_size=settings.db_pool_size,
                            max_overflow=settings.db_max_overflow)  # no connection is made
    try:
        assert engine.dialect.driver == "psycopg"
        assert engine.pool.size() == 12 and engine.pool._max_overflow == 3  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_the_sandbox_epoch_is_stored_once_in_the_database(settings, engine):
    first = sandbox.epoch_for(settings)
    later = Settings(**{**settings.__dict__, "fixed_now": datetime(2027, 3, 1, tzinfo=UTC)})
    assert sandbox.epoch_for(later) == first  # the clock moved on; the epoch did not
    with engine.connect() as conn:
        stored = conn.scalar(select(tables.SETTING_TABLE.c.value)
                             .where(tables.SETTING_TABLE.c.key == sandbox.EPOCH_KEY))
    assert stored == first.isoformat()
    if settings.sqlite_path is not None:  # no file beside the database any more
        assert not (settings.sqlite_path.parent / sandbox.EPOCH_FILE).exists()


def test_a_demo_made_before_keeps_its_epoch_from_the_file_beside_its_database(tmp_path):
    if databases.on_postgres():
        pytest.skip("the epoch file was only ever written beside a SQLite database")
    url = old_database(tmp_path)
    (tmp_path / sandbox.EPOCH_FILE).write_text("2026-10-25T00:00:00+00:00")
    settings = _settings(url)
    assert sandbox.epoch_for(settings) == datetime(2026, 10, 25, tzinfo=UTC)
    (tmp_path / sandbox.EPOCH_FILE).write_text("2020-01-01T00:00:00+00:00")  # read once: the database has it now
    assert sandbox.epoch_for(settings) == datetime(2026, 10, 25, tzinfo=UTC)
