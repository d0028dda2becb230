"""Invoices and agreements as real HaloPSA tenants have them (issue 12), synced from the emulator with each quirk
switched on and read back through the console: credit notes, drafts, invoices deleted in HaloPSA, expired agreements
that still say active, rows without the currency's code, and date-only fields sent with an offset."""

from dataclasses import replace
from datetime import date

import pytest
from sqlalchemy import select

from core.access import Principal
from core.actions import autopay_rules
from core.actions import connect as connections
from core.console import invoices as invoices_screen
from core.store.tables import AGREEMENT_TABLE, INVOICE_TABLE, Role, RunKind, RunStatus, SyncRecordError
from core.sync import connector
from core.sync import engine as sync_engine
from halo_emulator import FaultRule, HaloEmulator
from tests.support.clock import NOW
from tests.support.halo_state import differences, expected_invoices, stored_invoices

CS = Principal(role=Role.CS, user="cs@example.com")
DOMAIN = "https://acme.halopsa.com"


@pytest.fixture
def sync_settings(settings):
    return replace(settings, page_size=100, max_attempts=2, backoff_cap_s=0.01, rate_limit_requests=10**6)


def _connect(engine, settings, emu) -> int:
    form = connections.ConnectionForm(partner_name="Acme MSP", app_domain=DOMAIN, client_id=emu.client_id,
                                      client_secret=emu.client_secret, invoice_number_field="third_party")
    partner_id, _ = connections.connect(engine, CS, form, now=emu.now, settings=settings, transport=emu.transport())
    return partner_id


def _run(engine, settings, emu, partner_id, kind):
    factory = connector.stored_client_factory(settings, transport=emu.transport())
    return sync_engine.run_sync(engine, partner_id=partner_id, kind=kind, trigger="schedule", actor="test",
                                now=emu.now, settings=settings, client_factory=factory)


def _backfilled(engine, settings, emu) -> int:
    partner_id = _connect(engine, settings, emu)
    assert _run(engine, settings, emu, partner_id, RunKind.BACKFILL).status == RunStatus.SUCCEEDED
    return partner_id


def _with_every_rule(engine, partner_id) -> None:
    """An "on the due date" rule for every synced subtype: whatever is not charged says why."""
    for subtype_id, _shown in invoices_screen.filter_options(engine, CS, partner_id).subtypes:
        autopay_rules.save_rule(engine, CS, partner_id, autopay_rules.RuleInput(subtype_id), now=NOW)


def _table(engine, partner_id, **filters) -> dict[int, str]:
    """Every row of the invoice table's view, all pages: HaloPSA id -> the Auto-pay column."""
    stored = {row["number"]: halo_id for halo_id, row in stored_invoices(engine, partner_id).items()}
    rows: dict[int, str] = {}
    page, pages = 1, 1
    while page <= pages:
        found = invoices_screen.page(engine, CS, partner_id, invoices_screen.Filters(**filters), now=NOW, page=page,
                                     page_size=200)
        rows.update((stored[n], text) for n, text in zip(found.rows["number"], found.rows["eligibility"], strict=True))
        page, pages = page + 1, found.pages
    return rows


def test_a_credit_note_is_stored_as_credit_never_unpaid_and_never_auto_paid(engine, sync_settings):
    """Issue 12: a credit note (negative total and amount due) was stored with status "paid"."""
    emu = HaloEmulator(seed=11, invoices=400, start=NOW, rate_limit=None, credit_note_share=0.1)
    credits = {i for i, row in emu.invoices.items() if row["total"] < 0}
    partner_id = _backfilled(engine, sync_settings, emu)
    _with_every_rule(engine, partner_id)

    stored = stored_invoices(engine, partner_id)
    assert credits and {stored[i]["status"] for i in credits} == {"credit"}
    assert differences(expected_invoices(emu, "third_party"), stored) == []
    assert not credits & set(_table(engine, partner_id))
    listed = _table(engine, partner_id, view="credits")
    assert set(listed) == credits and set(listed.values()) == {"credit note"}
    assert not credits & set(_table(engine, partner_id, eligibility="eligible"))

    refresh = _run(engine, sync_settings, emu, partner_id, RunKind.FETCH_UNPAID)
    assert refresh.status == RunStatus.SUCCEEDED
    assert {stored_invoices(engine, partner_id)[i]["status"] for i in credits} == {"credit"}


def test_a_draft_is_stored_as_not_posted_and_the_invoice_table_says_why(engine, sync_settings):
    """Issue 12: drafts (`posted=false`) showed as unpaid and eligible for auto-pay."""
    emu = HaloEmulator(seed=11, invoices=400, start=NOW, rate_limit=None)
    drafts = {i for i, row in emu.invoices.items() if not row["posted"]}
    partner_id = _backfilled(engine, sync_settings, emu)
    _with_every_rule(engine, partner_id)

    assert drafts and {stored_invoices(engine, partner_id)[i]["status"] for i in drafts} == {"draft"}
    assert not drafts & set(_table(engine, partner_id))
    listed = _table(engine, partner_id, view="not_posted")
    assert set(listed) == drafts
    assert set(listed.values()) == {"not posted in HaloPSA (draft or awaiting approval)"}

    emu.edit_invoice(min(drafts), posted=True)  # approved and posted in HaloPSA: owed from now on
    assert _run(engine, sync_settings, emu, partner_id, RunKind.FETCH_UNPAID).status == RunStatus.SUCCEEDED
    assert stored_invoices(engine, partner_id)[min(drafts)]["status"] == "unpaid"


def test_an_invoice_deleted_in_halopsa_is_kept_as_deleted_neither_unpaid_nor_voided(engine, sync_settings):
    """Deleted in HaloPSA: absent from the unpaid listing, then 404 when read by id. It was marked voided."""
    emu = HaloEmulator(seed=11, invoices=400, start=NOW, rate_limit=None)
    partner_id = _backfilled(engine, sync_settings, emu)
    gone = max(i for i, row in emu.invoices.items() if row["posted"] and row["amountdue"] > 0)
    before = stored_invoices(engine, partner_id)[gone]
    emu.delete_invoice(gone)

    result = _run(engine, sync_settings, emu, partner_id, RunKind.FETCH_UNPAID)

    assert result.status == RunStatus.SUCCEEDED
    assert stored_invoices(engine, partner_id)[gone] == {**before, "status": "deleted"}  # history kept as last read
    with engine.connect() as conn:
        voided = conn.scalar(select(INVOICE_TABLE.c.voided).where(INVOICE_TABLE.c.halo_id == gone))
        [note] = conn.execute(select(SyncRecordError).where(SyncRecordError.run_id == result.run_id)).all()
    assert voided is False and note.halo_id == gone and "deleted" in note.reason
    assert gone not in _table(engine, partner_id)

    requests = emu.stats.by_path[f"/api/invoice/{gone}"]
    again = _run(engine, sync_settings, emu, partner_id, RunKind.FETCH_UNPAID)
    assert again.status == RunStatus.SUCCEEDED and again.tally.updated == 0
    assert emu.stats.by_path[f"/api/invoice/{gone}"] == requests  # never asked for again
    assert stored_invoices(engine, partner_id)[gone]["status"] == "deleted"


def test_an_expired_agreement_that_still_says_active_is_not_active_for_auto_pay(engine, sync_settings):
    """Issue 12: `active` was read without `expired`, so expired agreements counted as active for auto-pay."""
    emu = HaloEmulator(seed=11, invoices=1000, start=NOW, rate_limit=None, expired_stays_active=True)
    expired = {i for i, row in emu.contracts.items() if row["expired"] and row["active"]}
    partner_id = _backfilled(engine, sync_settings, emu)
    _with_every_rule(engine, partner_id)

    with engine.connect() as conn:
        active = dict(conn.execute(select(AGREEMENT_TABLE.c.halo_id, AGREEMENT_TABLE.c.active)).all())
    assert expired and not any(active[i] for i in expired)
    on_expired = {i for i, row in emu.invoices.items() if row["contract_id"] in expired}
    table = _table(engine, partner_id, sort="number")
    listed = {i: text for i, text in table.items() if i in on_expired}
    assert listed and set(listed.values()) == {"agreement inactive"}


def test_the_currency_comes_from_the_currency_list_when_rows_lack_its_code(engine, sync_settings):
    """Issue 12: without `currency_code_name` the currency fell back to the symbol "$"."""
    emu = HaloEmulator(seed=11, invoices=400, start=NOW, rate_limit=None, currency_code_name=False)
    _backfilled(engine, sync_settings, emu)

    with engine.connect() as conn:
        stored = dict(conn.execute(select(INVOICE_TABLE.c.halo_id, INVOICE_TABLE.c.currency)).all())
    expected = {i: emu.clients[row["client_id"]]["currencyisocode"] for i, row in emu.invoices.items()}
    assert stored == expected and {"USD", "CAD"} <= set(stored.values())
    assert emu.stats.by_path["/api/currency"] == 2  # the probe's at connect, then one per run, not per invoice


def test_a_date_only_field_sent_with_an_offset_is_stored_as_written(engine, sync_settings):
    """Issue 12: `2025-01-31T00:00:00+10:00` was stored as 2025-01-30."""
    emu = HaloEmulator(seed=11, invoices=100, start=NOW, rate_limit=None)
    partner_id = _connect(engine, sync_settings, emu)
    rule = emu.add_fault(FaultRule(kind="malformed_record", path="/api/invoice", times=1, field="duedate",
                                   value="2025-01-31T00:00:00+10:00"))
    assert _run(engine, sync_settings, emu, partner_id, RunKind.BACKFILL).status == RunStatus.SUCCEEDED

    [halo_id] = rule.corrupted_ids
    with engine.connect() as conn:
        due = conn.scalar(select(INVOICE_TABLE.c.due_date).where(INVOICE_TABLE.c.halo_id == halo_id))
    assert due == date(2025, 1, 31)
