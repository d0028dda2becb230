import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import StatementError

from core.store.tables import AUDIT_TABLE, RUN_TABLE, AuditAction, RunKind, RunStatus, RunTrigger
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
