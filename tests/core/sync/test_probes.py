"""The capability probe through the console: at connect, on demand (a probe job), again after a run met an answer it
did not foresee; stored per partner for its tenant and used by every run."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from core.access import Principal
from core.actions import connect as connections
from core.actions import fetches
from core.console import connection as connection_screen
from core.errors import AccessDenied, SyncAlreadyQueued
from core.store.tables import (
    AUDIT_TABLE,
    CONNECTION_TABLE,
    PROBE_TABLE,
    RUN_TABLE,
    AuditAction,
    Role,
    RunKind,
    RunStatus,
)
from core.sync import connector, worker
from core.sync import engine as sync_engine
from halo_emulator import DEFAULT_SORTABLE_FIELDS, FaultRule, HaloEmulator
from tests.support.clock import NOW

CS = Principal(role=Role.CS, user="cs@example.com")
DOMAIN = "https://acme.halopsa.com"


@pytest.fixture
def sync_settings(settings):
    return replace(settings, max_attempts=2, backoff_cap_s=0.01, rate_limit_requests=10**6)


def _emu(**quirks) -> HaloEmulator:
    return HaloEmulator(**{"seed": 5, "invoices": 400, "start": NOW, "rate_limit": None, "activity": 10,
                           "page_size_cap": 100, **quirks})


def _connect(engine, settings, emu):
    form = connections.ConnectionForm(partner_name="Acme MSP", app_domain=DOMAIN, client_id=emu.client_id,
                                      client_secret=emu.client_secret)
    return connections.connect(engine, CS, form, now=emu.now, settings=settings, transport=emu.transport())


def _run(engine, settings, emu, partner_id, kind=RunKind.SCHEDULED):
    factory = connector.stored_client_factory(settings, transport=emu.transport())
    return sync_engine.run_sync(engine, partner_id=partner_id, kind=kind, trigger="schedule", actor="t", now=emu.now,
                                settings=settings, client_factory=factory)


def _paths(emu: HaloEmulator, since: int) -> list[str]:
    return [entry.path.lower() for entry in emu.stats.log[since:]]


def _message(engine, run_id) -> str:
    with engine.connect() as conn:
        return conn.scalar(select(RUN_TABLE.c.message).where(RUN_TABLE.c.id == run_id)) or ""


def test_connect_probes_the_tenant_and_runs_use_it_without_asking_again(engine, sync_settings) -> None:
    emu = _emu(page_size_cap=40, record_count_is_page_length=True)
    partner_id, verification = _connect(engine, sync_settings, emu)
    assert verification.probe is not None and verification.probe.page_cap == 40
    check = connection_screen.tenant_check(engine, CS, partner_id)
    assert check is not None and check.ran_at == emu.now and check.stale_reason is None
    assert any("at most 40 rows a page" in sentence for sentence in check.findings)

    before = len(emu.stats.log)
    result = _run(engine, sync_settings, emu, partner_id)
    assert result.status == RunStatus.SUCCEEDED and result.tally.invoices_seen == len(emu.invoices)
    asked = [e.query for e in emu.stats.log[before:] if e.path.lower() == "/api/invoice"]
    assert {q["page_size"] for q in asked} == {"40"}  # the cap found, so a page of 40 is never taken for the last
    assert "/api/authinfo" not in _paths(emu, before)  # the token address found is used
    assert "Checked what this HaloPSA supports" not in _message(engine, result.run_id)


def test_a_check_asked_for_runs_as_a_job_says_why_and_is_audited(engine, sync_settings) -> None:
    emu = _emu()
    partner_id, _ = _connect(engine, sync_settings, emu)
    later = emu.now + timedelta(hours=1)
    job_id = fetches.request_tenant_check(engine, CS, partner_id=partner_id, now=later)
    with pytest.raises(SyncAlreadyQueued):
        fetches.request_tenant_check(engine, CS, partner_id=partner_id, now=later)
    assert connection_screen.tenant_check(engine, CS, partner_id).queued

    factory = connector.stored_client_factory(sync_settings, transport=emu.transport())
    result = worker.run_job_now(engine, sync_settings, factory, job_id, lease=timedelta(minutes=5), now=later)

    assert result.kind == RunKind.PROBE and result.status == RunStatus.SUCCEEDED
    assert result.tally.created + result.tally.updated == 0
    assert "because it was asked for" in _message(engine, result.run_id)
    check = connection_screen.tenant_check(engine, CS, partner_id)
    assert check.ran_at == later and not check.queued
    with engine.connect() as conn:
        actions = list(conn.scalars(select(AUDIT_TABLE.c.action).where(AUDIT_TABLE.c.partner_id == partner_id)))
    assert AuditAction.TENANT_CHECK in actions


def test_a_run_that_meets_an_unforeseen_answer_has_the_next_run_probe_first(engine, sync_settings) -> None:
    emu = _emu(datesearch=True)
    partner_id, _ = _connect(engine, sync_settings, emu)
    assert _run(engine, sync_settings, emu, partner_id).status == RunStatus.SUCCEEDED
    emu.advance(emu.now + timedelta(hours=1))
    emu.add_fault(FaultRule(kind="status", path="/api/invoice", status=400, times=1))  # sorting refused, once

    gave_way = _run(engine, sync_settings, emu, partner_id)

    assert gave_way.status == RunStatus.SUCCEEDED
    check = connection_screen.tenant_check(engine, CS, partner_id)
    assert check.stale_reason and f"run {gave_way.run_id} met an answer" in check.stale_reason
    assert "The next sync checks again" in check.headline
    emu.advance(emu.now + timedelta(hours=1))
    again = _run(engine, sync_settings, emu, partner_id)
    assert "Checked what this HaloPSA supports" in _message(engine, again.run_id)
    assert connection_screen.tenant_check(engine, CS, partner_id).stale_reason is None


def test_a_probe_that_cannot_finish_at_connect_saves_anyway_and_the_first_run_probes(engine, sync_settings) -> None:
    emu = _emu(sortable_fields=DEFAULT_SORTABLE_FIELDS)
    emu.add_fault(FaultRule(kind="status", path="/api/invoice", status=503, times=2))  # the probe's first listing
    partner_id, verification = _connect(engine, sync_settings, emu)
    assert verification.probe is None and "HTTP 503" in (verification.probe_error or "")
    assert connection_screen.tenant_check(engine, CS, partner_id).ran_at is None
    with engine.connect() as conn:
        assert conn.scalar(select(CONNECTION_TABLE.c.partner_id)) == partner_id  # saved
        detail = conn.scalar(select(AUDIT_TABLE.c.detail).where(AUDIT_TABLE.c.action == AuditAction.VERIFY_CONNECTION))
    assert "could not check what it supports" in detail

    result = _run(engine, sync_settings, emu, partner_id, RunKind.BACKFILL)
    assert result.status == RunStatus.SUCCEEDED
    assert "because this HaloPSA was not checked yet" in _message(engine, result.run_id)
    assert connection_screen.tenant_check(engine, CS, partner_id).ran_at is not None


def test_a_probe_holds_only_for_the_tenant_it_ran_on(engine, sync_settings) -> None:
    emu = _emu()
    partner_id, _ = _connect(engine, sync_settings, emu)
    with engine.begin() as conn:  # the connection now reads another tenant (an edit elsewhere)
        conn.execute(update(PROBE_TABLE).values(tenant_key="https://other.halopsa.com|"))
    assert connection_screen.tenant_check(engine, CS, partner_id).ran_at is None
    result = _run(engine, sync_settings, emu, partner_id, RunKind.BACKFILL)
    assert "because this HaloPSA was not checked yet" in _message(engine, result.run_id)


def test_only_customer_success_and_the_partner_itself_may_ask_for_a_check(engine, sync_settings) -> None:
    emu = _emu()
    partner_id, _ = _connect(engine, sync_settings, emu)
    for principal in (Principal(role=Role.PM, user="pm@example.com"),
                      Principal(role=Role.PARTNER, user="p@example.com", partner_id=partner_id + 1)):
        with pytest.raises(AccessDenied):
            fetches.request_tenant_check(engine, principal, partner_id=partner_id, now=NOW)
        with pytest.raises(AccessDenied):
            connection_screen.tenant_check(engine, principal, partner_id)
    own = Principal(role=Role.PARTNER, user="p@example.com", partner_id=partner_id)
    assert fetches.request_tenant_check(engine, own, partner_id=partner_id, now=NOW) > 0
