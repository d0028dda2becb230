"""Listing methods per tenant, end to end through the engine against the emulator with each quirk switched on:
`record_count` as the page length, an `order` answered 500 or ignored, `datesearch` on and off, remembered per
connection and revised on an error; and Fetch unpaid invoices bounded by one full listing whatever the status codes.
Request counts come from the emulator's own request log."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import delete, select, update

from core.access import Principal
from core.actions import connect as connections
from core.actions import fetches
from core.halopsa.probe import Finding, ProbeResult, Verdict
from core.store.tables import LISTING_TABLE, PROBE_TABLE, RUN_TABLE, Listing, ListingMethod, Role, RunKind, RunStatus
from core.sync import connector, listings
from core.sync import engine as sync_engine
from halo_emulator import FaultRule, HaloEmulator
from tests.support.clock import NOW
from tests.support.halo_state import UNPAID, differences, expected_invoices, stored_invoices

CS = Principal(role=Role.CS, user="cs@example.com")
DOMAIN = "https://acme.halopsa.com"
NOT_SORTABLE = frozenset({"id", "name", "invoice_date"})  # neither last_modified nor alastupdate


@pytest.fixture
def sync_settings(settings):
    return replace(settings, max_attempts=2, backoff_cap_s=0.01, rate_limit_requests=10**6, cooldown_new_data_s=60,
                   cooldown_unpaid_s=60)


def tenant(invoices: int = 900, **quirks) -> HaloEmulator:
    return HaloEmulator(seed=13, invoices=invoices, start=NOW, rate_limit=None, activity=10, page_size_cap=100,
                        **quirks)


def connect(engine, settings, emu, *, probed: bool = True) -> int:
    """Connect (which probes the tenant). `probed=False`: as if the probe had found the documented behaviour (the
    tenant changed since, say by an upgrade), so the runs meet the quirk themselves and must find their way."""
    form = connections.ConnectionForm(partner_name="Acme MSP", app_domain=DOMAIN, client_id=emu.client_id,
                                      client_secret=emu.client_secret, invoice_number_field="third_party")
    partner_id, _ = connections.connect(engine, CS, form, now=emu.now, settings=settings, transport=emu.transport())
    if not probed:
        documented = Finding(Verdict.WORKS, "works.")
        with engine.begin() as conn:
            found = ProbeResult.from_json(conn.scalar(select(PROBE_TABLE.c.result)))
            result = replace(found, page_cap=None, sorted_listing=documented, date_filter=documented,
                             unpaid_codes=(0, 1), paid_codes=(2,))
            conn.execute(update(PROBE_TABLE).values(result=result.to_json()))
            conn.execute(delete(LISTING_TABLE))
    return partner_id


def backfill(engine, settings, emu, partner_id):
    factory = connector.stored_client_factory(settings, transport=emu.transport())
    return sync_engine.run_sync(engine, partner_id=partner_id, kind=RunKind.BACKFILL, trigger="connect", actor="t",
                                now=emu.now, settings=settings, client_factory=factory)


def press(engine, settings, emu, partner_id, kind):
    """A manual fetch as a person presses it; the emulator's clock moves past the cooldown first."""
    emu.advance(emu.now + timedelta(minutes=2))
    factory = connector.stored_client_factory(settings, transport=emu.transport())
    return fetches.start_manual_fetch(engine, CS, partner_id=partner_id, kind=kind, now=emu.now, settings=settings,
                                      client_factory=factory)


def scheduled(engine, settings, emu, partner_id):
    factory = connector.stored_client_factory(settings, transport=emu.transport())
    return sync_engine.run_sync(engine, partner_id=partner_id, kind=RunKind.SCHEDULED, trigger="schedule", actor="t",
                                now=emu.now, settings=settings, client_factory=factory)


def message(engine, run_id: int) -> str:
    with engine.connect() as conn:
        return conn.scalar(select(RUN_TABLE.c.message).where(RUN_TABLE.c.id == run_id)) or ""


def memory(engine, partner_id: int) -> dict[Listing, ListingMethod]:
    with engine.connect() as conn:
        rows = conn.execute(select(LISTING_TABLE.c.listing, LISTING_TABLE.c.method)
                            .where(LISTING_TABLE.c.partner_id == partner_id)).all()
    return {row.listing: row.method for row in rows}


def invoice_requests(emu: HaloEmulator, since: int = 0) -> list[dict[str, str]]:
    return [dict(e.query) for e in emu.stats.log[since:] if e.path.lower() == "/api/invoice"]


def window_converged(engine, emu, partner_id) -> list[str]:
    expected = expected_invoices(emu, "third_party")
    stored = stored_invoices(engine, partner_id)
    start = emu.now - timedelta(hours=1)
    covered = {i for i, row in emu.invoices.items() if row["last_modified"] >= start.strftime("%Y-%m-%dT%H:%M:%S")}
    assert covered, "nothing changed in the window: the test proves nothing"
    return differences({i: expected[i] for i in covered}, {i: stored[i] for i in covered if i in stored})


def busy_hour(emu: HaloEmulator) -> None:
    emu.advance(emu.now + timedelta(minutes=58))
    for halo_id in sorted(emu.invoices)[:5]:
        emu.edit_invoice(halo_id, reference=f"edited {halo_id}")
    emu.add_invoice(total=123.45)


# -- pages --------------------------------------------------------------------------------------------------------


def test_a_900_invoice_backfill_on_a_tenant_counting_the_page_stores_900(engine, sync_settings) -> None:
    emu = tenant(900, record_count_is_page_length=True)
    partner_id = connect(engine, sync_settings, emu)
    before = len(emu.stats.log)
    result = backfill(engine, sync_settings, emu, partner_id)
    assert result.status == RunStatus.SUCCEEDED, result.error
    stored = stored_invoices(engine, partner_id)
    assert len(stored) == 900 and result.tally.invoices_seen == 900
    assert differences(expected_invoices(emu, "third_party"), stored) == []
    assert len(invoice_requests(emu, before)) == 10  # nine full pages of 100, then the empty page


# -- incremental listings -----------------------------------------------------------------------------------------


def test_fetch_new_data_with_order_answered_500_succeeds_by_datesearch_says_so_and_starts_there_next(
        engine, sync_settings) -> None:
    emu = tenant(sortable_fields=NOT_SORTABLE, unsortable_order_status=500, datesearch=True)
    partner_id = connect(engine, sync_settings, emu, probed=False)
    assert backfill(engine, sync_settings, emu, partner_id).status == RunStatus.SUCCEEDED
    busy_hour(emu)
    before = len(emu.stats.log)

    result = press(engine, sync_settings, emu, partner_id, RunKind.FETCH_NEW_DATA)

    assert result.status == RunStatus.SUCCEEDED and result.error is None
    assert window_converged(engine, emu, partner_id) == []
    said = message(engine, result.run_id)
    assert "Changed invoices: HaloPSA's date filter" in said and "HTTP 500" in said
    assert "Changed customers: a full scan" in said and "request" in said
    assert memory(engine, partner_id) == {Listing.INVOICE_CHANGES: ListingMethod.DATESEARCH,
                                          Listing.CUSTOMER_CHANGES: ListingMethod.SCAN}
    asked = invoice_requests(emu, before)
    assert sum("order" in q for q in asked) == sync_settings.max_attempts  # the 500, retried, then given up

    busy_hour(emu)
    before = len(emu.stats.log)
    again = press(engine, sync_settings, emu, partner_id, RunKind.FETCH_NEW_DATA)
    assert again.status == RunStatus.SUCCEEDED
    assert window_converged(engine, emu, partner_id) == []
    said = message(engine, again.run_id)
    [changed] = [sentence for sentence in said.split(". ") if sentence.startswith("Changed invoices")]
    assert "HaloPSA's date filter (" in changed and "gave way" not in changed
    assert "Checked what this HaloPSA supports" in said and f"because run {result.run_id} met" in said
    listed = [q for q in invoice_requests(emu, before) if "datesearch" in q]
    assert listed and not any("order" in q for q in listed), "the listing starts at the method found"
    assert memory(engine, partner_id)[Listing.INVOICE_CHANGES] == ListingMethod.DATESEARCH


def test_fetch_new_data_without_sorting_or_datesearch_succeeds_by_a_full_scan_and_says_so(
        engine, sync_settings) -> None:
    emu = tenant(sortable_fields=NOT_SORTABLE, unsortable_order_status=500)
    partner_id = connect(engine, sync_settings, emu, probed=False)
    backfill(engine, sync_settings, emu, partner_id)
    busy_hour(emu)
    result = press(engine, sync_settings, emu, partner_id, RunKind.FETCH_NEW_DATA)
    assert result.status == RunStatus.SUCCEEDED and result.error is None
    assert window_converged(engine, emu, partner_id) == []
    said = message(engine, result.run_id)
    assert "Changed invoices: a full scan" in said and "ignored the date filter" in said
    assert memory(engine, partner_id)[Listing.INVOICE_CHANGES] == ListingMethod.SCAN


def test_an_order_that_is_ignored_gives_way_and_is_remembered(engine, sync_settings) -> None:
    emu = tenant(sortable_fields=NOT_SORTABLE, datesearch=True)
    partner_id = connect(engine, sync_settings, emu, probed=False)
    backfill(engine, sync_settings, emu, partner_id)
    busy_hour(emu)
    result = scheduled(engine, sync_settings, emu, partner_id)
    assert result.status == RunStatus.SUCCEEDED
    assert "did not sort" in message(engine, result.run_id)
    assert memory(engine, partner_id)[Listing.INVOICE_CHANGES] == ListingMethod.DATESEARCH


def test_a_remembered_method_that_errors_is_revised_within_the_run(engine, sync_settings) -> None:
    emu = tenant(datesearch=True)
    partner_id = connect(engine, sync_settings, emu)
    backfill(engine, sync_settings, emu, partner_id)
    connection = SimpleNamespace(app_domain=DOMAIN, tenant=None)
    listings.remember(engine, partner_id, connection, Listing.INVOICE_CHANGES, ListingMethod.DATESEARCH, "probe",
                      now=NOW)
    busy_hour(emu)
    emu.add_fault(FaultRule(kind="status", path="/api/invoice", status=400, times=1))
    result = press(engine, sync_settings, emu, partner_id, RunKind.FETCH_NEW_DATA)
    assert result.status == RunStatus.SUCCEEDED, result.error
    assert window_converged(engine, emu, partner_id) == []
    assert "a full scan (" in message(engine, result.run_id)
    assert "after the date filter gave way (HaloPSA answered HTTP 400)" in message(engine, result.run_id)
    assert memory(engine, partner_id)[Listing.INVOICE_CHANGES] == ListingMethod.SCAN


def test_a_remembered_method_holds_only_for_the_tenant_it_was_learnt_on(engine, sync_settings) -> None:
    emu = tenant()
    partner_id = connect(engine, sync_settings, emu)
    here = SimpleNamespace(app_domain=DOMAIN, tenant=None)
    elsewhere = SimpleNamespace(app_domain="https://other.halopsa.com", tenant=None)
    listings.remember(engine, partner_id, here, Listing.INVOICE_CHANGES, ListingMethod.SCAN, "learnt", now=NOW)
    assert listings.remembered(engine, partner_id, SimpleNamespace(app_domain=DOMAIN + "/", tenant="")) == {
        Listing.INVOICE_CHANGES: ListingMethod.SCAN}
    assert listings.remembered(engine, partner_id, elsewhere) == {}
    assert listings.start_method(listings.remembered(engine, partner_id, elsewhere), listings.Entity.INVOICE) == (
        listings.Method.SORTED)


def test_a_sorting_tenant_is_read_by_the_sorted_window_and_nothing_is_written(engine, sync_settings) -> None:
    emu = tenant()
    partner_id = connect(engine, sync_settings, emu)
    backfill(engine, sync_settings, emu, partner_id)
    busy_hour(emu)
    result = press(engine, sync_settings, emu, partner_id, RunKind.FETCH_NEW_DATA)
    said = message(engine, result.run_id)
    assert "Changed customers: sorted newest first" in said and "Changed invoices: sorted newest first" in said
    assert memory(engine, partner_id) == {}


# -- unpaid refresh -------------------------------------------------------------------------------------------------


def _unpaid_converged(engine, emu, partner_id) -> list[str]:
    expected = expected_invoices(emu, "third_party")
    stored = stored_invoices(engine, partner_id)
    unpaid = {i for i, row in expected.items() if row["status"] in UNPAID}
    stored_unpaid = {i for i, row in stored.items() if row["status"] in UNPAID}
    return [f"{i} unpaid here only" for i in sorted(stored_unpaid - unpaid)] + differences(
        {i: expected[i] for i in unpaid}, {i: stored[i] for i in unpaid if i in stored})


OTHER_CODES = {"status_unpaid": 5, "status_partial": 6, "status_paid": 7}


def test_unpaid_refresh_costs_no_more_than_a_full_listing_when_the_status_codes_differ(engine, sync_settings) -> None:
    emu = tenant(2600, **OTHER_CODES)
    partner_id = connect(engine, sync_settings, emu, probed=False)
    before = len(emu.stats.log)
    first = backfill(engine, sync_settings, emu, partner_id)
    assert first.status == RunStatus.SUCCEEDED
    full_listing = len(invoice_requests(emu, before))
    assert memory(engine, partner_id) == {Listing.UNPAID_INVOICES: ListingMethod.SCAN}
    assert "Fetch unpaid invoices will read every invoice of this tenant: HaloPSA's unpaid status filter misses" in (
        message(engine, first.run_id))
    emu.advance(emu.now + timedelta(days=3))  # payments, new invoices, voids
    before = len(emu.stats.log)

    result = press(engine, sync_settings, emu, partner_id, RunKind.FETCH_UNPAID)

    assert result.status == RunStatus.SUCCEEDED, result.error
    assert _unpaid_converged(engine, emu, partner_id) == []
    spent = len(invoice_requests(emu, before))
    assert spent <= full_listing + len(emu.invoices) // 100 - 2600 // 100  # the listing grew with the new invoices
    assert "the whole invoice listing" in message(engine, result.run_id)


def test_an_unpaid_refresh_without_a_remembered_method_reads_the_whole_listing_once_and_remembers(
        engine, sync_settings) -> None:
    emu = tenant(2600, **OTHER_CODES)
    partner_id = connect(engine, sync_settings, emu, probed=False)
    before = len(emu.stats.log)
    backfill(engine, sync_settings, emu, partner_id)
    full_listing = len(invoice_requests(emu, before))
    with engine.begin() as conn:  # a partner backfilled before methods were remembered
        conn.execute(delete(LISTING_TABLE))
    before = len(emu.stats.log)
    result = press(engine, sync_settings, emu, partner_id, RunKind.FETCH_UNPAID)
    assert result.status == RunStatus.SUCCEEDED
    assert _unpaid_converged(engine, emu, partner_id) == []
    assert len(invoice_requests(emu, before)) <= full_listing + 1  # the filtered page that came back empty
    assert "filter left out" in message(engine, result.run_id)
    assert memory(engine, partner_id) == {Listing.UNPAID_INVOICES: ListingMethod.SCAN}
    before = len(emu.stats.log)
    assert press(engine, sync_settings, emu, partner_id, RunKind.FETCH_UNPAID).status == RunStatus.SUCCEEDED
    assert len(invoice_requests(emu, before)) <= full_listing


def test_an_unpaid_refresh_on_matching_codes_uses_the_status_filter(engine, sync_settings) -> None:
    emu = tenant(2600)
    partner_id = connect(engine, sync_settings, emu)
    backfill(engine, sync_settings, emu, partner_id)
    assert memory(engine, partner_id) == {}
    emu.advance(emu.now + timedelta(hours=3))
    before = len(emu.stats.log)
    result = press(engine, sync_settings, emu, partner_id, RunKind.FETCH_UNPAID)
    assert result.status == RunStatus.SUCCEEDED
    assert _unpaid_converged(engine, emu, partner_id) == []
    asked = invoice_requests(emu, before)
    listed = [q for q in asked if "paymentstatuses" in q]
    unpaid = sum(1 for row in emu.invoices.values() if row["paymentstatus"] in (0, 1))
    assert len(listed) == unpaid // 100 + 1
    re_read = sum(1 for e in emu.stats.log[before:] if e.path.lower().startswith("/api/invoice/"))  # by id
    assert re_read > 0 and len(listed) + re_read <= len(emu.invoices) // 100 + 1
    assert f"HaloPSA's unpaid status filter, then {re_read} invoices" in message(engine, result.run_id)


def test_an_unpaid_refresh_whose_filter_left_out_more_than_a_listing_costs_reads_the_listing_instead(
        engine, sync_settings) -> None:
    emu = tenant(2600)
    partner_id = connect(engine, sync_settings, emu)
    before = len(emu.stats.log)
    backfill(engine, sync_settings, emu, partner_id)
    full_listing = len(invoice_requests(emu, before))
    emu.advance(emu.now + timedelta(days=3))  # more invoices paid since than a full listing has pages
    before = len(emu.stats.log)
    result = press(engine, sync_settings, emu, partner_id, RunKind.FETCH_UNPAID)
    assert result.status == RunStatus.SUCCEEDED
    assert _unpaid_converged(engine, emu, partner_id) == []
    assert "the whole listing was read instead" in message(engine, result.run_id)
    listed = [q for q in invoice_requests(emu, before) if "paymentstatuses" in q]
    assert len(invoice_requests(emu, before)) - len(listed) <= full_listing + len(emu.invoices) // 100 - 26
    assert memory(engine, partner_id) == {}, "the codes fit: the next refresh uses the filter again"


def test_the_probe_at_connect_finds_the_tenants_unpaid_codes_so_the_filter_fits(engine, sync_settings) -> None:
    emu = tenant(2600, **OTHER_CODES)
    partner_id = connect(engine, sync_settings, emu)
    before = len(emu.stats.log)
    backfill(engine, sync_settings, emu, partner_id)
    full_listing = len(invoice_requests(emu, before))
    assert Listing.UNPAID_INVOICES not in memory(engine, partner_id)  # the filter fits: no scan needed
    emu.advance(emu.now + timedelta(hours=3))
    before = len(emu.stats.log)
    result = press(engine, sync_settings, emu, partner_id, RunKind.FETCH_UNPAID)
    assert result.status == RunStatus.SUCCEEDED
    assert _unpaid_converged(engine, emu, partner_id) == []
    listed = [q for q in invoice_requests(emu, before) if "paymentstatuses" in q]
    assert listed and all(set(q["paymentstatuses"].split(",")) >= {"5", "6"} for q in listed)
    assert "7" not in listed[0]["paymentstatuses"].split(",")  # the paid code stays out
    assert len(invoice_requests(emu, before)) < full_listing
