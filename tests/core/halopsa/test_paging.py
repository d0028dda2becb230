"""Paging and listing methods against tenants that page, count and sort unlike the documentation (reference section
11): pages of 100, `record_count` as the page length, pages longer than asked, a response size cap, and the
incremental listing's methods (sorted window, `datesearch`, full scan) with their fallbacks and costs."""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from core.errors import HaloUnavailable, PermissionMissing
from core.halopsa import paging
from core.halopsa.config import HaloConfig, TenantProfile
from core.halopsa.paging import ListingReport, Method
from core.halopsa.records import parse_customer, parse_invoice
from core.halopsa.sizecap import PageTooLarge
from halo_emulator import EmulatorConfig, FaultRule, HaloEmulator, serve
from tests.support.client_fakes import FakeHalo, emulator_client, invoice_row, make_client
from tests.support.clock import FakeClock

NOT_SORTABLE = frozenset({"id", "name", "invoice_date"})  # no last_modified, no alastupdate


def _emulator(invoices: int = 900, **config) -> HaloEmulator:
    clock = FakeClock()
    return HaloEmulator(EmulatorConfig(**{"seed": 5, "invoices": invoices, "clock": clock, "sleep": clock.sleep,
                                          "rate_limit": None, "page_size_cap": 100, **config}))


def _ids(pages) -> list[int]:
    return [record.halo_id for page in pages for record in page.records]


def _listing_requests(emulator: HaloEmulator, path: str = "/api/Invoice") -> list[dict[str, str]]:
    return [dict(entry.query) for entry in emulator.stats.entries(path)]


def _changed_since(emulator: HaloEmulator, since) -> set[int]:
    found = (parse_invoice(row) for row in emulator.invoices.values())
    return {i.halo_id for i in found if i.last_modified is not None and i.last_modified >= since}


def _busy_week(emulator: HaloEmulator):
    """A week of payments, edits and new invoices; returns a moment two days before its end."""
    start = emulator.now
    emulator.advance(start + timedelta(days=7))
    return start + timedelta(days=5)


# -- pages ------------------------------------------------------------------------------------------------------------


def test_the_client_asks_for_pages_of_100() -> None:
    assert HaloConfig().page_size == 100
    emulator = _emulator(250)
    assert len(_ids(emulator_client(emulator).iter_invoices())) == 250
    assert [(q["page_no"], q["page_size"]) for q in _listing_requests(emulator)] == [("1", "100"), ("2", "100"),
                                                                                   ("3", "100")]


def test_record_count_reporting_the_page_length_still_reads_every_page() -> None:
    emulator = _emulator(900, record_count_is_page_length=True)
    listed = _ids(emulator_client(emulator).iter_invoices())
    assert sorted(listed) == sorted(emulator.invoices) and len(listed) == 900
    assert len(_listing_requests(emulator)) == 10  # nine full pages, then the empty one that ends the listing


@pytest.mark.parametrize("paging", [{"page_size_cap": 50}, {"served_page_size": 50}])
def test_a_tenant_serving_fewer_rows_than_asked_with_record_count_the_pages_length_is_read_whole(paging) -> None:
    """Issue 12 (SOP addendum): `record_count` is the page's length (50) whatever page_size asks. A first page of 50
    when 100 were asked, saying 50 in all, ended the listing: 50 of 900 invoices read and the run a success."""
    emulator = _emulator(900, record_count_is_page_length=True, **paging)
    listed = _ids(emulator_client(emulator).iter_invoices())
    assert sorted(listed) == sorted(emulator.invoices) and len(listed) == 900
    assert len(_listing_requests(emulator)) == 19  # eighteen pages of 50, then the empty one that ends the listing


def test_a_short_first_page_costs_one_more_request_to_tell_a_small_listing_from_a_cap() -> None:
    emulator = _emulator(40)
    assert sorted(_ids(emulator_client(emulator).iter_invoices())) == sorted(emulator.invoices)
    assert [(q["page_no"], q["page_size"]) for q in _listing_requests(emulator)] == [("1", "100"), ("2", "40")]
    assert [paging.listing_requests(rows, 100) for rows in (0, 40, 99, 100, 250)] == [1, 2, 2, 2, 3]


def test_a_full_page_asks_for_the_next_whatever_record_count_says() -> None:
    rows = [invoice_row(i) for i in range(1, 251)]
    fake = FakeHalo(lists={"invoice": ("invoices", rows)})
    fake.queue("/api/invoice", httpx.Response(200, json={"record_count": 100, "invoices": rows[:100]}))
    assert _ids(make_client(fake).iter_invoices()) == list(range(1, 251))


def test_a_page_longer_than_asked_is_requested_once() -> None:
    emulator = _emulator(2500, ignore_paging=True)
    client = emulator_client(emulator)
    pages = list(client.iter_invoices())
    assert sorted(_ids(pages)) == sorted(emulator.invoices)
    assert len(_listing_requests(emulator)) == 1
    assert client.stats.pages == 1


def test_an_instance_paging_by_a_larger_size_than_asked_is_followed_to_the_end() -> None:
    emulator = _emulator(1200, served_page_size=500)
    assert sorted(_ids(emulator_client(emulator).iter_invoices())) == sorted(emulator.invoices)
    assert len(_listing_requests(emulator)) == 3


def test_a_repeated_full_page_ends_the_listing_even_when_record_count_says_there_is_more() -> None:
    rows = [invoice_row(i) for i in range(1, 101)]
    fake = FakeHalo(lists={"invoice": ("invoices", rows)})
    fake.queue("/api/invoice", *[httpx.Response(200, json={"record_count": 5000, "invoices": rows})] * 60)
    assert _ids(make_client(fake).iter_invoices()) == list(range(1, 101))
    assert len(fake.api_requests("/api/invoice")) == 2


# -- response size cap --------------------------------------------------------------------------------------------


def test_a_300_mb_page_is_refused_readably_with_bounded_memory_and_not_asked_again() -> None:
    emulator = HaloEmulator(EmulatorConfig(seed=5, invoices=200, rate_limit=None))
    rule = emulator.add_fault(FaultRule(kind="oversize", path="/api/invoice", times=None, size_bytes=300 * 2**20))
    cap = HaloConfig().max_page_bytes
    with serve(emulator) as server, emulator_client(emulator, base_url=server.url) as client:
        tracemalloc.start()
        try:
            with pytest.raises(PageTooLarge) as refused:
                list(client.iter_invoices())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert rule.fired == 1, "a page over the cap is not asked for again"
    assert peak < cap + 16 * 2**20, f"peak {peak / 2**20:.1f} MiB for a cap of {cap / 2**20:.0f} MiB"
    message = refused.value.message
    assert f"larger than {cap // 2**20} MB" in message and "/api/Invoice" in message
    assert "HALO_MAX_PAGE_MB" in message and "Traceback" not in message


def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    fake = FakeHalo(lists={"invoice": ("invoices", [invoice_row(1)])})
    fake.queue("/api/invoice", httpx.Response(200, headers={"Content-Length": str(2**31)}, content=b"{}"))
    client = make_client(fake, max_page_bytes=2**20)
    with pytest.raises(PageTooLarge, match="larger than 1 MB"):
        list(client.iter_invoices())
    assert client.stats.retries == 0


def test_a_page_under_the_cap_is_read_as_usual() -> None:
    emulator = _emulator(300)
    emulator.add_fault(FaultRule(kind="oversize", path="/api/invoice", times=1, size_bytes=3 * 2**20))
    assert sorted(_ids(emulator_client(emulator, max_page_bytes=4 * 2**20).iter_invoices())) == sorted(
        emulator.invoices)


# -- incremental listings: sorted window, datesearch, full scan -----------------------------------------------------


def _changes(emulator: HaloEmulator, start: Method = Method.SORTED, **config):
    since = _busy_week(emulator)
    client = emulator_client(emulator, max_attempts=2, backoff_cap_s=0.01, **config)
    report = ListingReport()
    before = len(emulator.stats.log)
    listed = _ids(client.iter_changed_invoices(since=since, method=start, report=report))
    assert len(listed) == len(set(listed))
    assert set(listed) == _changed_since(emulator, since)
    assert report.requests == len(emulator.stats.log) - before  # every request the listing cost, token included
    return report, [dict(e.query) for e in emulator.stats.log[before:] if e.path.lower() == "/api/invoice"]


def test_a_sorting_tenant_is_read_newest_first_and_stops_at_the_window() -> None:
    emulator = _emulator(2000)
    report, asked = _changes(emulator)
    assert (report.method, report.dropped) == (Method.SORTED, [])
    assert all(q["order"] == "last_modified" and q["orderdesc"] == "true" for q in asked)
    assert len(asked) < 20


@pytest.mark.parametrize("status", [500, 400])
def test_an_order_refused_with_an_error_falls_back_to_datesearch(status: int) -> None:
    emulator = _emulator(2000, sortable_fields=NOT_SORTABLE, unsortable_order_status=status, datesearch=True)
    report, asked = _changes(emulator)
    assert report.method == Method.DATESEARCH
    assert [m for m, _ in report.dropped] == [Method.SORTED] and f"HTTP {status}" in report.dropped[0][1]
    tried = 2 if status == 500 else 1  # a 500 is retried (max_attempts=2); a 400 is not
    assert all("order" in q for q in asked[:tried]) and not any("order" in q for q in asked[tried:])
    assert all(q["datesearch"] == "last_modified" for q in asked[tried:])
    assert len(asked) - tried < 20  # datesearch read the changed rows only, not the 20 pages of the listing


def test_an_order_that_is_ignored_falls_back_to_datesearch() -> None:
    emulator = _emulator(2000, sortable_fields=NOT_SORTABLE, datesearch=True)
    report, asked = _changes(emulator)
    assert report.method == Method.DATESEARCH
    assert "did not sort" in report.dropped[0][1]
    assert asked[0]["order"] == "last_modified" and "order" not in asked[1]


def test_without_sorting_or_datesearch_the_listing_is_a_full_scan() -> None:
    emulator = _emulator(2000, sortable_fields=NOT_SORTABLE, unsortable_order_status=500)
    report, asked = _changes(emulator)
    assert report.method == Method.SCAN
    assert [m for m, _ in report.dropped] == [Method.SORTED, Method.DATESEARCH]
    assert "ignored the date filter" in report.dropped[1][1]
    datesearch = [q for q in asked if "datesearch" in q]
    assert len(datesearch) == len(_listing_requests(emulator)) - 2  # the ignored filter's listing was read on
    assert len(datesearch) == len(emulator.invoices) // 100 + 1  # the whole listing, read once


def test_a_datesearch_refused_with_an_error_falls_back_to_a_full_scan() -> None:
    rows = [invoice_row(i, last_modified=f"2025-01-{i:02d}T00:00:00") for i in range(1, 31)]
    fake = FakeHalo(lists={"invoice": ("invoices", rows)})
    fake.queue("/api/invoice", httpx.Response(500, json={"Message": "order"}), httpx.Response(400, json={}))
    client = make_client(fake, max_attempts=1)
    report = ListingReport()
    ids = _ids(client.iter_changed_invoices(since=datetime(2025, 1, 25, tzinfo=UTC), report=report))
    assert sorted(ids) == [25, 26, 27, 28, 29, 30]
    assert report.method == Method.SCAN and [m for m, _ in report.dropped] == [Method.SORTED, Method.DATESEARCH]
    asked = fake.api_requests("/api/invoice")
    assert [("order" in r.url.params, "datesearch" in r.url.params) for r in asked] == [
        (True, False), (False, True), (False, False), (False, False)]  # the scan's short first page asks once more


def test_a_remembered_method_is_where_the_listing_starts() -> None:
    emulator = _emulator(2000, sortable_fields=NOT_SORTABLE, unsortable_order_status=500, datesearch=True)
    report, asked = _changes(emulator, start=Method.DATESEARCH)
    assert (report.method, report.dropped) == (Method.DATESEARCH, [])
    assert not any("order" in q for q in asked)
    scan, asked = _changes(_emulator(600), start=Method.SCAN)
    assert (scan.method, scan.dropped) == (Method.SCAN, [])
    assert not any("order" in q or "datesearch" in q for q in asked)


def test_rows_already_listed_before_a_fallback_are_not_listed_again() -> None:
    # page 1 looks sorted, page 2 is not: the records of page 1 must not come twice after the fallback
    rows = [invoice_row(i, last_modified=f"2025-01-{31 - i:02d}T00:00:00") for i in range(1, 11)]
    rows += [invoice_row(i, last_modified=f"2025-02-{i - 10:02d}T00:00:00") for i in range(11, 21)]
    rows += [invoice_row(i, last_modified=f"2024-12-{i - 20:02d}T00:00:00") for i in range(21, 31)]
    fake = FakeHalo(lists={"invoice": ("invoices", rows)}, honour_order=False)
    report = ListingReport()
    ids = _ids(make_client(fake, page_size=10).iter_changed_invoices(since=datetime(2025, 1, 15, tzinfo=UTC),
                                                                      report=report))
    assert sorted(ids) == list(range(1, 21)) and len(ids) == 20
    assert report.method == Method.SCAN and [m for m, _ in report.dropped] == [Method.SORTED, Method.DATESEARCH]


def test_a_failure_that_is_not_about_the_listing_is_not_a_fallback() -> None:
    emulator = _emulator(600, sortable_fields=NOT_SORTABLE, unsortable_order_status=500, datesearch=True)
    emulator.add_fault(FaultRule(kind="status", path="/api/invoice", status=503, times=None))
    client = emulator_client(emulator, max_attempts=2, backoff_cap_s=0.01)
    report = ListingReport()
    with pytest.raises(HaloUnavailable, match="HTTP 503"):
        list(client.iter_changed_invoices(since=emulator.now - timedelta(days=1), report=report))
    assert report.method is None
    emulator.clear_faults()
    emulator.set_scopes(["read:customers"])
    emulator.expire_tokens()
    with pytest.raises(PermissionMissing):
        list(client.iter_changed_invoices(since=emulator.now - timedelta(days=1), report=ListingReport()))


def test_customers_fall_back_to_a_full_scan_when_their_order_is_refused() -> None:
    emulator = _emulator(2000, sortable_fields=NOT_SORTABLE, unsortable_order_status=500, datesearch=True)
    since = _busy_week(emulator)
    report = ListingReport()
    client = emulator_client(emulator, max_attempts=1)
    listed = _ids(client.iter_changed_customers(since=since, report=report))
    expected = {cid for cid, row in emulator.clients.items() if parse_customer(row).last_modified >= since}
    assert expected and sorted(listed) == sorted(expected)
    assert report.method == Method.SCAN and [m for m, _ in report.dropped] == [Method.SORTED]


def test_invoices_created_since_fall_back_to_a_full_scan_when_their_order_is_refused() -> None:
    emulator = _emulator(1500, sortable_fields=frozenset({"id"}), unsortable_order_status=400)
    created_since = (emulator.now - timedelta(days=60)).date()
    report = ListingReport()
    listed = _ids(emulator_client(emulator).iter_invoices(created_since=created_since, report=report))
    found = (parse_invoice(row) for row in emulator.invoices.values())
    expected = {i.halo_id for i in found if i.invoice_date is not None and i.invoice_date >= created_since}
    assert expected and sorted(listed) == sorted(expected)
    assert report.method == Method.SCAN


# -- unpaid: the server's filter, checked against what full listings show ------------------------------------------


def test_a_full_listing_tells_whether_the_unpaid_filter_fits_the_tenant() -> None:
    fitting = _emulator(900)
    client = emulator_client(fitting)
    assert client.unpaid_check is None
    list(client.iter_invoices())
    check = client.unpaid_check
    assert check is not None and check.rows == 900 and check.open > 0 and check.missed == 0
    assert check.filtered_cost(100) < check.scan_cost(100) and not check.prefer_scan(100)

    other_codes = _emulator(900, status_unpaid=5, status_partial=6, status_paid=7)
    client = emulator_client(other_codes)
    list(client.iter_invoices())
    check = client.unpaid_check
    assert check is not None and check.missed == check.open > 0 and check.inside == 0
    assert check.prefer_scan(100)


def test_unpaid_invoices_from_a_full_scan_are_checked_here() -> None:
    emulator = _emulator(900, status_unpaid=5, status_partial=6, status_paid=7)
    client = emulator_client(emulator)
    unpaid = _ids(client.iter_unpaid_invoices(filtered=False))
    found = (parse_invoice(row) for row in emulator.invoices.values())
    assert sorted(unpaid) == sorted(i.halo_id for i in found if i.amount_due_cents > 0 and not i.voided)
    assert not any("paymentstatuses" in q for q in _listing_requests(emulator))
    assert client.unpaid_check is not None and client.unpaid_check.rows == 900


def test_a_scan_of_rows_without_a_change_time_keeps_them_all() -> None:
    """A tenant whose list rows lack the modification time (reference 11) is scanned whole: nothing it lists may be
    dropped for want of a time (before, every such customer was left out of every incremental run)."""
    customers = [{"id": i, "name": f"Customer {i}"} for i in range(1, 8)]
    fake = FakeHalo(lists={"client": ("clients", customers)})
    since = datetime(2025, 1, 1, tzinfo=UTC)
    report = ListingReport()
    pages = make_client(fake).iter_changed_customers(since=since, method=Method.SCAN, report=report)
    assert [c.halo_id for page in pages for c in page.records] == list(range(1, 8))
    assert report.method == Method.SCAN


def test_a_bare_nan_in_a_page_rejects_that_record_and_keeps_the_rest() -> None:
    """JavaScript-style `NaN` and `Infinity` tokens are not JSON; a strict decoder failed the whole page, so every
    run of the partner failed at it, forever. The page is read leniently and the record is rejected."""
    rows = [invoice_row(1), invoice_row(2), invoice_row(3)]
    body = json.dumps({"invoices": rows, "record_count": 3}).replace('"amountdue": 100.0', '"amountdue": NaN', 1)
    body = body.replace('"total": 100.0', '"total": Infinity', 2)
    assert "NaN" in body and "Infinity" in body
    fake = FakeHalo(lists={"invoice": ("invoices", rows)})
    page = httpx.Response(200, content=body.encode(), headers={"content-type": "application/json"})
    fake.queue("/api/invoice", *[page] * 3)  # the tenant sends it every time it is asked
    pages = list(make_client(fake, max_attempts=3, backoff_cap_s=0.01).iter_invoices())
    assert [invoice.halo_id for page in pages for invoice in page.records] == [3]
    assert sorted(error.halo_id for page in pages for error in page.errors) == [1, 2]
    assert all("finite" in error.reason for page in pages for error in page.errors)


@pytest.mark.parametrize(("proven", "requests"), [(False, 2), (True, 1)])
def test_a_short_first_page_costs_one_request_once_a_probe_proved_the_page_size(proven, requests) -> None:
    """A probe that saw the tenant serve full pages of the size asked makes a short first page the whole listing:
    every small listing (an hour's changes) saves the request that looks for a hidden cap."""
    fake = FakeHalo(lists={"invoice": ("invoices", [invoice_row(i) for i in range(1, 31)])})
    client = make_client(fake)
    client.adopt(TenantProfile(token_url=f"{client.base_url}/auth/token", page_size=100,
                               unpaid_payment_statuses="0,1", page_size_proven=proven))
    assert len([i for page in client.iter_invoices() for i in page.records]) == 30
    assert client.stats.pages == requests


def test_a_proven_page_size_still_follows_a_record_count_that_says_there_is_more() -> None:
    fake = FakeHalo(lists={"invoice": ("invoices", [invoice_row(i) for i in range(1, 131)])}, page_size_cap=50)
    client = make_client(fake)
    client.adopt(TenantProfile(token_url=f"{client.base_url}/auth/token", page_size=100,
                               unpaid_payment_statuses="0,1", page_size_proven=True))
    assert len([i for page in client.iter_invoices() for i in page.records]) == 130
