"""Switching the Invoice Number Field: a worker renumbers the stored invoices in one transaction (a renumber job), and
every page is written by the field the stored invoices are numbered by, so the numbering is never mixed, not even
when the field is switched in the middle of a backfill."""

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.access import Principal
from core.actions import connect as connections
from core.store.tables import CONNECTION_TABLE, INVOICE_TABLE, JOB_TABLE, Role, RunKind, RunStatus, RunTrigger
from core.sync import connector, jobs, scheduler, worker
from halo_emulator import HaloEmulator
from tests.support.clock import NOW
from tests.support.halo_state import differences, expected_invoices, stored_invoices

CS = Principal(role=Role.CS, user="cs@example.com")
LEASE = timedelta(seconds=60)


@pytest.fixture
def sync_settings(settings):
    return replace(settings, page_size=100, max_attempts=2, backoff_cap_s=0.01, rate_limit_requests=10**6)


@pytest.fixture
def emu():
    return HaloEmulator(seed=3, invoices=700, start=NOW, rate_limit=None)


def _save(engine, settings, emu, number_field):
    form = connections.ConnectionForm(partner_name="Acme MSP", app_domain="https://acme.halopsa.com",
                                      client_id=emu.client_id, client_secret=emu.client_secret,
                                      invoice_number_field=number_field)
    partner_id, _ = connections.connect(engine, CS, form, now=emu.now, settings=settings, transport=emu.transport())
    return partner_id


def _factory(settings, emu):
    return connector.stored_client_factory(settings, transport=emu.transport())


def _numberings(engine, partner_id) -> set[str]:
    """The fields the stored invoices are numbered by (invoices whose two numbers differ tell them apart)."""
    invoice = INVOICE_TABLE.c
    with engine.connect() as conn:
        rows = conn.execute(select(invoice.halo_id, invoice.third_party_number, invoice.display_number)
                            .where(invoice.partner_id == partner_id)).all()
    return {"third_party" if row.display_number == row.third_party_number else "halo_id"
            for row in rows if row.third_party_number and row.third_party_number != str(row.halo_id)}


def _backfill_job(engine, partner_id, now):
    with engine.begin() as conn:
        return jobs.enqueue(conn, partner_id=partner_id, kind=RunKind.BACKFILL, trigger=RunTrigger.CONNECT,
                            requested_by="test", now=now)


def test_switching_the_field_mid_backfill_never_mixes_the_numbering_and_a_renumbering_follows(
        engine, sync_settings, emu):
    partner_id = _save(engine, sync_settings, emu, "halo_id")
    seen: list[set[str]] = []

    def after_each_page(message: str) -> None:
        if message.startswith("Invoices:"):
            seen.append(_numberings(engine, partner_id))
            if len(seen) == 2:  # a partner switches the field while the backfill pages
                _save(engine, sync_settings, emu, "third_party")

    backfill = worker.run_job_now(engine, sync_settings, _factory(sync_settings, emu),
                                  _backfill_job(engine, partner_id, emu.now), lease=LEASE, progress=after_each_page,
                                  now=emu.now)

    assert backfill.status == RunStatus.SUCCEEDED and len(seen) == 8  # seven full pages, then the empty one
    assert all(numbering == {"halo_id"} for numbering in seen)  # one numbering at every page, the stored one
    [renumbering] = worker.drain(engine, sync_settings, _factory(sync_settings, emu), lease=LEASE)
    assert (renumbering.kind, renumbering.status) == (RunKind.RENUMBER, RunStatus.SUCCEEDED)
    assert renumbering.tally.updated == len(emu.invoices)
    assert differences(expected_invoices(emu, "third_party"), stored_invoices(engine, partner_id)) == []


def test_an_edit_queues_one_renumbering_that_reads_no_halopsa_and_leaves_the_connections_health_alone(
        engine, sync_settings, emu):
    partner_id = _save(engine, sync_settings, emu, "halo_id")
    worker.run_job_now(engine, sync_settings, _factory(sync_settings, emu),
                       _backfill_job(engine, partner_id, emu.now), lease=LEASE, now=emu.now)
    _save(engine, sync_settings, emu, "third_party")
    _save(engine, sync_settings, emu, "halo_id")
    _save(engine, sync_settings, emu, "third_party")  # three edits, one renumbering queued, numbering unchanged
    with engine.connect() as conn:
        queued = conn.execute(select(JOB_TABLE.c.kind, JOB_TABLE.c.trigger)
                              .where(JOB_TABLE.c.state == "queued")).all()
        verified_before = conn.scalar(select(CONNECTION_TABLE.c.last_verified_at))
    assert queued == [(RunKind.RENUMBER, RunTrigger.EDIT)]
    assert _numberings(engine, partner_id) == {"halo_id"}

    requests_before = emu.stats.requests
    [result] = worker.drain(engine, sync_settings, _factory(sync_settings, emu), lease=LEASE)

    assert result.status == RunStatus.SUCCEEDED and emu.stats.requests == requests_before
    assert _numberings(engine, partner_id) == {"third_party"}
    with engine.connect() as conn:
        assert conn.scalar(select(CONNECTION_TABLE.c.last_verified_at)) == verified_before


def test_the_scheduler_queues_a_renumbering_an_edit_could_not(engine, sync_settings, emu):
    partner_id = _save(engine, sync_settings, emu, "halo_id")
    worker.run_job_now(engine, sync_settings, _factory(sync_settings, emu),
                       _backfill_job(engine, partner_id, emu.now), lease=LEASE, now=emu.now)
    with engine.begin() as conn:  # the field changed while a renumbering was finishing: no job queued for it
        conn.execute(CONNECTION_TABLE.update().values(invoice_number_field="third_party"))

    queued = scheduler.enqueue_due(engine, now=emu.now, settings=sync_settings)
    assert scheduler.enqueue_due(engine, now=emu.now, settings=sync_settings) == []  # once, by any scheduler
    with engine.connect() as conn:
        kinds = conn.scalars(select(JOB_TABLE.c.kind).where(JOB_TABLE.c.id.in_(queued))).all()
    assert kinds == [RunKind.RENUMBER]
    worker.drain(engine, sync_settings, _factory(sync_settings, emu), lease=LEASE)
    assert _numberings(engine, partner_id) == {"third_party"}
