import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import StatementError

from core.store.tables import (
    AUDIT_TABLE,
    INVOICE_TABLE,
    RUN_TABLE,
    AuditAction,
    InvoiceStatus,
    RunKind,
    RunStatus,
    RunTrigger,
)
from core.sync import runs
from tests.support.clock import NOW
from tests.support.factories import add_partner


def test_a_stored_vocabulary_reads_back_as_its_enum_and_is_stored_as_its_text(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    runs.start_run(engine, partner_id=partner_id, partner_name="p", kind=RunKind.FETCH_UNPAID,
                   trigger=RunTrigger.MANUAL, actor="cs", now=NOW, settings=settings)
    with engine.connect() as conn:
        run = conn.execute(select(RUN_TABLE)).one()
        raw = conn.execute(text("SELECT kind, trigger, status FROM syncrun")).one()
    assert (run.kind, run.trigger, run.status) == (RunKind.FETCH_UNPAID, RunTrigger.MANUAL, RunStatus.RUNNING)
    assert type(run.kind) is RunKind and type(run.trigger) is RunTrigger
    assert tuple(raw) == ("fetch_unpaid", "manual", "running")


def test_a_word_outside_the_vocabulary_is_refused_and_nothing_is_written(engine):
    with pytest.raises(StatementError, match="not a valid AuditAction"), engine.begin() as conn:
        conn.execute(AUDIT_TABLE.insert().values(at=NOW, actor="cs", action="delete_everything", detail=""))
    with engine.connect() as conn:
        assert conn.execute(select(AUDIT_TABLE)).all() == []
    assert AuditAction("export") is AuditAction.EXPORT


def test_every_invoice_status_is_stored_as_text_in_the_migrated_schema_without_a_migration(engine, settings):
    """Issue 12 added credit, draft and deleted: the column is plain text (EnumText), so the words need no revision."""
    partner_id = add_partner(engine, settings, now=NOW)
    rows = [{"partner_id": partner_id, "halo_id": n, "display_number": str(n), "total_cents": 0,
             "amount_paid_cents": 0, "amount_due_cents": 0, "status": status, "synced_at": NOW}
            for n, status in enumerate(InvoiceStatus, start=1)]
    with engine.begin() as conn:
        conn.execute(INVOICE_TABLE.insert(), rows)
    with engine.connect() as conn:
        stored = conn.execute(select(INVOICE_TABLE.c.status).order_by(INVOICE_TABLE.c.halo_id)).scalars().all()
        raw = conn.execute(text("SELECT status FROM invoice ORDER BY halo_id")).scalars().all()
    assert stored == list(InvoiceStatus) and raw == [status.value for status in InvoiceStatus]
    assert {"credit", "draft", "deleted"} <= set(raw)
