"""Reconciliation against the emulator: the three injected drifts (an invoice edited in HaloPSA outside every sync
window, one deleted, one added before the last window) are found and nothing else; invoices dated before Invoices
Created Since and changes after the last window are counted apart, not drift; a targeted resync clears the drift and
a second reconciliation finds none; the read costs no more than one full listing."""

import json
from dataclasses import replace
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from core.access import Principal
from core.actions import connect as connections
from core.halopsa import paging
from core.halopsa.client import HaloClient
from core.halopsa.records import RecordError
from core.store.tables import (
    CONNECTION_TABLE,
    DRIFT_TABLE,
    INVOICE_TABLE,
    RECONCILIATION_TABLE,
    DriftKind,
    Role,
    RunKind,
    RunStatus,
    SyncRecordError,
)
from core.sync import connector, reconcile
from core.sync import engine as sync_engine
from halo_emulator import FaultRule, HaloEmulator
from tests.support.clock import NOW
from tests.support.halo_state import expected_invoices

CS = Principal(role=Role.CS, user="cs@example.com")
SINCE = (NOW - timedelta(days=120)).date()


@pytest.fixture
def sync_settings(settings):
    return replace(settings, page_size=100, max_attempts=2, backoff_cap_s=0.01, rate_limit_requests=10**6)


@pytest.fixture
def emu():
    return HaloEmulator(seed=5, invoices=400, start=NOW, rate_limit=None, activity=10)


def _connect(engine, settings, emu, since=SINCE):
    form = connections.ConnectionForm(partner_name="Acme MSP", app_domain="https://acme.halopsa.com",
                                      client_id=emu.client_id, client_secret=emu.client_secret,
                                      invoices_created_since=since)
    partner_id, _ = connections.connect(engine, CS, form, now=emu.now, settings=settings, transport=emu.transport())
    return partner_id


def _run(engine, settings, emu, partner_id, kind, trigger="request"):
    factory = connector.stored_client_factory(settings, transport=emu.transport())
    return sync_engine.run_sync(engine, partner_id=partner_id, kind=kind, trigger=trigger, actor="cs@example.com",
                                now=emu.now, settings=settings, client_factory=factory)


def _latest(engine, partner_id):
    with engine.connect() as conn:
        row = conn.execute(select(RECONCILIATION_TABLE).where(RECONCILIATION_TABLE.c.partner_id == partner_id)
                           .order_by(RECONCILIATION_TABLE.c.id.desc()).limit(1)).first()
        items = conn.execute(select(DRIFT_TABLE).where(DRIFT_TABLE.c.reconciliation_id == row.id)).all()
    return row, items


def connector_row(engine, partner_id):
    with engine.connect() as conn:
        return conn.execute(select(CONNECTION_TABLE).where(CONNECTION_TABLE.c.partner_id == partner_id)).one()


def _open(engine, partner_id):
    with engine.connect() as conn:
        return reconcile.open_drift(conn, partner_id)


def _dated(emu, halo_id):
    return date.fromisoformat(emu.invoices[halo_id]["invoice_date"][:10])


def _unpaid_in_scope(emu, invoice_id):
    return next(i for i, row in expected_invoices(emu).items() if row["status"] == "unpaid" and i != invoice_id
                and _dated(emu, i) >= SINCE)


@pytest.fixture
def drifted(engine, sync_settings, emu):
    """A partner backfilled and synced since, then its HaloPSA drifted three ways outside every sync window."""
    partner_id = _connect(engine, sync_settings, emu)
    assert _run(engine, sync_settings, emu, partner_id, RunKind.BACKFILL, "connect").status == RunStatus.SUCCEEDED
    emu.advance(emu.now + timedelta(hours=2))
    assert _run(engine, sync_settings, emu, partner_id, RunKind.SCHEDULED, "schedule").status == RunStatus.SUCCEEDED
    back = NOW - timedelta(days=1)  # stamped before every window the syncs read
    edited = _unpaid_in_scope(emu, None)
    emu.edit_invoice(edited, modified_at=back, total=float(emu.invoices[edited]["total"]) + 50.0)
    deleted = _unpaid_in_scope(emu, edited)
    emu.delete_invoice(deleted)
    added = emu.add_invoice(modified_at=back, invoice_date=f"{NOW.date()}T00:00:00")["id"]
    before_scope = emu.add_invoice(invoice_date=f"{SINCE - timedelta(days=3)}T00:00:00")["id"]
    return partner_id, {"edited": edited, "deleted": deleted, "added": added, "before_scope": before_scope}


def test_a_reconciliation_finds_exactly_the_injected_drift_and_writes_no_invoice(engine, sync_settings, emu, drifted):
    partner_id, ids = drifted
    with engine.connect() as conn:
        before = conn.execute(select(INVOICE_TABLE).order_by(INVOICE_TABLE.c.id)).all()
    result = _run(engine, sync_settings, emu, partner_id, RunKind.RECONCILE)
    assert result.status == RunStatus.SUCCEEDED
    assert (result.tally.created, result.tally.updated) == (0, 0)
    with engine.connect() as conn:
        assert conn.execute(select(INVOICE_TABLE).order_by(INVOICE_TABLE.c.id)).all() == before
    row, items = _latest(engine, partner_id)
    found = {(item.halo_id, item.kind) for item in items}
    assert found == {(ids["edited"], DriftKind.AMOUNT_DIFFERS), (ids["deleted"], DriftKind.EXTRA_HERE),
                     (ids["added"], DriftKind.MISSING_HERE)}
    assert (row.drift, row.missing_here, row.extra_here, row.amount_differs, row.status_differs) == (3, 1, 1, 1, 0)
    in_scope = {i for i in emu.invoices if _dated(emu, i) >= SINCE}
    assert row.halo_invoices == len(in_scope)
    assert row.halo_outside_scope == len(emu.invoices) - len(in_scope) and ids["before_scope"] not in in_scope
    expected = expected_invoices(emu)
    unpaid = [i for i in in_scope if expected[i]["status"] in ("unpaid", "partially_paid")]
    halo_unpaid = json.loads(row.halo_unpaid)
    assert sum(count for count, _ in halo_unpaid.values()) == len(unpaid)
    assert sum(cents for _, cents in halo_unpaid.values()) == sum(expected[i]["amount_due"] for i in unpaid)
    edited = next(item for item in items if item.halo_id == ids["edited"])
    assert edited.halo_value != edited.local_value and "total" in edited.halo_value


def test_the_listing_is_read_once_for_no_more_than_its_estimate(engine, sync_settings, emu, drifted):
    partner_id, _ = drifted
    connection = connector_row(engine, partner_id)
    first = reconcile.estimate(engine, partner_id, connection, sync_settings)
    assert first.at_least and first.text.startswith("at least ")  # the invoices before the scope are not known yet
    _run(engine, sync_settings, emu, partner_id, RunKind.RECONCILE)
    second = reconcile.estimate(engine, partner_id, connection, sync_settings)
    assert not second.at_least and second.text.startswith("about ")
    result = _run(engine, sync_settings, emu, partner_id, RunKind.RECONCILE)
    row, _ = _latest(engine, partner_id)
    full_listing = paging.listing_requests(len(emu.invoices), 100)
    assert row.requests_used <= full_listing + 1  # + the token, as every run
    assert result.tally.requests == row.requests_used
    assert row.requests_estimated == second.requests and abs(second.requests - full_listing) <= 1


def test_changes_after_the_last_window_are_pending_not_drift(engine, sync_settings, emu, drifted):
    partner_id, ids = drifted
    changes = emu.advance(emu.now + timedelta(hours=3))
    assert changes.invoice_ids()
    with engine.connect() as conn:
        stored = set(conn.scalars(select(INVOICE_TABLE.c.halo_id)))
    _run(engine, sync_settings, emu, partner_id, RunKind.RECONCILE)
    row, items = _latest(engine, partner_id)
    assert row.pending > 0
    # a deletion is drift whenever it happened: no listing by modification time ever shows it
    deleted_since = stored & set(changes.invoices_deleted)
    assert {item.halo_id for item in items} == {ids["edited"], ids["deleted"], ids["added"]} | deleted_since


def test_a_targeted_resync_clears_the_drift_and_a_second_reconciliation_finds_none(engine, sync_settings, emu,
                                                                                   drifted):
    partner_id, ids = drifted
    _run(engine, sync_settings, emu, partner_id, RunKind.RECONCILE)
    result = _run(engine, sync_settings, emu, partner_id, RunKind.RESYNC)
    assert result.status == RunStatus.SUCCEEDED
    assert result.tally.requests <= 3 + 1
    _, items = _latest(engine, partner_id)
    assert all(item.cleared_at is not None and item.cleared_by_run == result.run_id for item in items)
    with engine.connect() as conn:
        stored = {row.halo_id: row for row in conn.execute(select(INVOICE_TABLE))}
    assert stored[ids["deleted"]].status == "deleted"
    assert ids["added"] in stored
    assert stored[ids["edited"]].total_cents == round(float(emu.invoices[ids["edited"]]["total"]) * 100)
    assert ids["before_scope"] not in stored
    _run(engine, sync_settings, emu, partner_id, RunKind.RECONCILE)
    row, items = _latest(engine, partner_id)
    assert (row.drift, items) == (0, [])
    assert row.halo_unpaid == row.local_unpaid and row.halo_invoices == row.local_invoices
    again = _run(engine, sync_settings, emu, partner_id, RunKind.RESYNC)  # nothing left: reads nothing
    assert (again.status, again.tally.updated) == (RunStatus.SUCCEEDED, 0)


def test_a_stored_invoice_now_dated_before_the_scope_is_reported_apart(engine, sync_settings, emu, drifted):
    partner_id, ids = drifted
    moved = _unpaid_in_scope(emu, ids["edited"])
    emu.edit_invoice(moved, modified_at=NOW - timedelta(days=1), invoice_date=f"{SINCE - timedelta(days=9)}T00:00:00")
    _run(engine, sync_settings, emu, partner_id, RunKind.RECONCILE)
    row, items = _latest(engine, partner_id)
    assert (moved, DriftKind.OUTSIDE_SCOPE) in {(item.halo_id, item.kind) for item in items}
    assert (row.outside_scope, row.drift) == (1, 3)
    assert moved not in _open(engine, partner_id)


def test_a_poison_record_on_resync_is_rejected_and_its_drift_stays_open(engine, sync_settings, emu, drifted,
                                                                       monkeypatch):
    partner_id, ids = drifted
    _run(engine, sync_settings, emu, partner_id, RunKind.RECONCILE)
    read = HaloClient.get_invoice

    def poisoned(client, halo_id):
        if halo_id == ids["edited"]:
            raise RecordError("invoice", halo_id, "total is not a number", {"id": halo_id, "total": "abc"})
        return read(client, halo_id)

    monkeypatch.setattr(HaloClient, "get_invoice", poisoned)
    result = _run(engine, sync_settings, emu, partner_id, RunKind.RESYNC)
    assert result.status == RunStatus.PARTIAL and result.tally.rejected == 1
    assert _open(engine, partner_id) == [ids["edited"]]


def test_an_unreadable_row_is_a_record_error_of_the_run_never_extra_here(engine, sync_settings, emu, drifted):
    partner_id, ids = drifted
    rule = emu.add_fault(FaultRule(kind="malformed_record", path="/api/invoice", times=1))
    result = _run(engine, sync_settings, emu, partner_id, RunKind.RECONCILE)
    assert result.status == RunStatus.PARTIAL and result.tally.rejected == 1
    [spoilt] = rule.corrupted_ids
    row, items = _latest(engine, partner_id)
    assert row.unreadable == 1 and spoilt not in {item.halo_id for item in items}
    with engine.connect() as conn:
        assert conn.scalars(select(SyncRecordError.halo_id).where(SyncRecordError.run_id == result.run_id)).all() \
            == [spoilt]
