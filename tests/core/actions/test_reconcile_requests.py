"""Asking for a reconciliation or a targeted resync: customer success only, one at a time per partner, audited with
its cost, never beside another sync of the partner; a resync with nothing to read is refused with what to do."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from core.access import Principal
from core.actions import reconcile as actions
from core.errors import AccessDenied, NotAllowedForRole, NotFound, SyncAlreadyQueued, SyncAlreadyRunning
from core.store.tables import (
    AUDIT_TABLE,
    JOB_TABLE,
    AuditAction,
    DriftKind,
    IntegrationRole,
    JobState,
    Lane,
    Role,
    RunKind,
    RunTrigger,
)
from core.sync import connector, runs
from halo_emulator import HaloEmulator
from tests.support.clock import NOW
from tests.support.factories import add_partner, add_reconciliation

CS = Principal(role=Role.CS, user="cs@example.com")


def _jobs(engine):
    with engine.connect() as conn:
        return conn.execute(select(JOB_TABLE.c.kind, JOB_TABLE.c.state, JOB_TABLE.c.lane, JOB_TABLE.c.trigger)
                            .order_by(JOB_TABLE.c.id)).all()


def _audit(engine):
    with engine.connect() as conn:
        return conn.execute(select(AUDIT_TABLE.c.action, AUDIT_TABLE.c.detail).order_by(AUDIT_TABLE.c.id)).all()


def test_customer_success_queues_one_reconciliation_at_a_time_audited_with_its_estimate(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    actions.request_reconcile(engine, CS, partner_id=partner_id, now=NOW, settings=settings)
    assert _jobs(engine) == [(RunKind.RECONCILE, JobState.QUEUED, Lane.LONG, RunTrigger.REQUEST)]
    [(action, detail)] = _audit(engine)
    assert action == AuditAction.RECONCILE and "HaloPSA requests" in detail
    with pytest.raises(SyncAlreadyQueued):
        actions.request_reconcile(engine, CS, partner_id=partner_id, now=NOW, settings=settings)
    assert len(_jobs(engine)) == 1 and len(_audit(engine)) == 1


@pytest.mark.parametrize("who", [Principal(role=Role.PM, user="pm@example.com"),
                                 Principal(role=Role.PARTNER, user="p@acme.example", partner_id=1)])
def test_only_customer_success_may_reconcile_or_resync(engine, settings, who):
    partner_id = add_partner(engine, settings, now=NOW)
    add_reconciliation(engine, partner_id, at=NOW, drift={5: DriftKind.EXTRA_HERE})
    with pytest.raises(AccessDenied):
        actions.request_reconcile(engine, who, partner_id=partner_id, now=NOW, settings=settings)
    with pytest.raises(AccessDenied):
        actions.request_resync(engine, who, partner_id=partner_id, now=NOW, settings=settings)
    assert _jobs(engine) == [] and _audit(engine) == []


def test_a_secondary_integration_is_not_reconciled(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW, role=IntegrationRole.SECONDARY)
    with pytest.raises(NotAllowedForRole, match="Reconciliation is offered only"):
        actions.request_reconcile(engine, CS, partner_id=partner_id, now=NOW, settings=settings)


def test_a_resync_reads_the_open_drift_and_is_refused_when_none_is_left(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    with pytest.raises(NotFound, match="Reconcile now"):
        actions.request_resync(engine, CS, partner_id=partner_id, now=NOW, settings=settings)
    add_reconciliation(engine, partner_id, at=NOW, drift={5: DriftKind.EXTRA_HERE, 6: DriftKind.OUTSIDE_SCOPE})
    actions.request_resync(engine, CS, partner_id=partner_id, now=NOW, settings=settings)
    assert _jobs(engine) == [(RunKind.RESYNC, JobState.QUEUED, Lane.SHORT, RunTrigger.REQUEST)]
    [(action, detail)] = _audit(engine)
    assert action == AuditAction.RESYNC and "1 differing invoices" in detail  # the one out of scope is not read


def test_a_reconciliation_never_runs_beside_another_sync_of_the_partner(engine, settings):
    emu = HaloEmulator(seed=3, invoices=20, start=NOW, rate_limit=None)
    partner_id = add_partner(engine, settings, now=NOW, client_id=emu.client_id, client_secret=emu.client_secret)
    runs.start_run(engine, partner_id=partner_id, partner_name="Acme MSP", kind=RunKind.SCHEDULED,
                   trigger=RunTrigger.SCHEDULE, actor="scheduler", now=NOW - timedelta(seconds=5), settings=settings)
    factory = connector.stored_client_factory(settings, transport=emu.transport())
    with pytest.raises(SyncAlreadyRunning):
        actions.reconcile_now(engine, CS, partner_id=partner_id, now=NOW, settings=settings, client_factory=factory)
    assert _jobs(engine) == [(RunKind.RECONCILE, JobState.CANCELLED, Lane.LONG, RunTrigger.REQUEST)]
    assert emu.stats.requests == 0
