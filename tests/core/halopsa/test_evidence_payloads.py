"""The client reading HaloPSA answers exactly as the public evidence shows them (tests/support/evidence.py): the
token reply of a read-only application, rows with `...Z` and zone-less times, a listing capped at 100 rows a page with
record_count 717, one whose record_count is the page's length, agreements both active and expired, a bare-text 429, a
500 on an `order` the tenant cannot sort by, and a credit note. Served as literal payloads by a hand-written fake."""

from __future__ import annotations

from datetime import UTC, date, datetime

import httpx

from core.halopsa.config import HaloConfig
from core.halopsa.paging import ListingReport, Method
from tests.support import evidence
from tests.support.client_fakes import FakeHalo, make_client
from tests.support.clock import FakeClock


def _records(pages) -> list:
    return [record for page in pages for record in page.records]


def _ids(pages) -> list[int]:
    return [record.halo_id for record in _records(pages)]


def _paged(rows: list[dict], *, per_page: int, record_count) -> FakeHalo:
    """A tenant answering every invoice page with `per_page` rows whatever `page_size` asks, as section 3.1's envelope,
    `record_count(rows on this page)` in it."""
    fake = FakeHalo()

    def answer(request: httpx.Request) -> httpx.Response:
        page_no = int(request.url.params["page_no"])
        chunk = rows[(page_no - 1) * per_page: page_no * per_page]
        body = evidence.envelope(chunk, record_count=record_count(chunk), page_no=page_no, page_size=per_page)
        return httpx.Response(200, json=body)

    fake.queue("/api/invoice", *[answer] * (len(rows) // per_page + 3))
    return fake


def test_the_observed_token_reply_is_read_and_the_missing_permissions_named() -> None:
    fake = FakeHalo()
    fake.queue("/auth/token", httpx.Response(200, json=evidence.TOKEN_REPLY))
    check = make_client(fake).verify()
    assert check.reported and "read:invoices" in check.granted
    assert check.missing == ("admin:webhooks", "edit:contracts", "edit:customers", "edit:invoices")


def test_rows_with_z_and_zone_less_times_are_the_same_utc_moments() -> None:
    fake = FakeHalo(lists={"invoice": ("invoices", [evidence.INVOICE_ROW_ZONELESS, evidence.INVOICE_ROW_ZULU])})
    plain, zulu = _records(make_client(fake).iter_invoices())
    assert plain.last_modified == datetime(2025, 1, 2, 10, tzinfo=UTC)
    assert zulu.last_modified == datetime(2025, 1, 2, 10, 0, 0, 262000, tzinfo=UTC)
    assert (plain.invoice_date, plain.due_date) == (zulu.invoice_date, zulu.due_date) == (date(2025, 1, 1),
                                                                                        date(2025, 1, 31))
    changed = make_client(fake).iter_changed_invoices(since=datetime(2025, 1, 2, 10, 0, 0, 100000, tzinfo=UTC))
    assert _ids(changed) == [evidence.INVOICE_ROW_ZULU["id"]]


def test_a_listing_capped_at_100_rows_with_record_count_717_is_read_whole_once() -> None:
    rows = evidence.invoice_rows(1, evidence.CAPPED_LISTING_RECORDS)
    fake = _paged(rows, per_page=evidence.CAPPED_PAGE_ROWS, record_count=lambda _: evidence.CAPPED_LISTING_RECORDS)
    listed = _ids(make_client(fake, page_size=1000).iter_invoices())  # HaloAPI asks for 1000, as in its issue 90
    assert listed == [row["id"] for row in rows]
    assert [r.url.params["page_size"] for r in fake.api_requests("/api/invoice")] == ["1000"] + ["100"] * 7


def test_a_listing_whose_record_count_is_the_pages_length_is_read_whole() -> None:
    rows = evidence.invoice_rows(1, 900)
    fake = _paged(rows, per_page=evidence.PAGE_LENGTH_RECORD_COUNT, record_count=len)
    assert _ids(make_client(fake).iter_invoices()) == [row["id"] for row in rows]
    assert len(fake.api_requests("/api/invoice")) == 900 // evidence.PAGE_LENGTH_RECORD_COUNT + 1


def test_an_agreement_both_active_and_expired_is_not_active() -> None:
    fake = FakeHalo(lists={"clientcontract": ("contracts", [evidence.EXPIRED_BUT_ACTIVE_CONTRACT])})
    [agreement] = _records(make_client(fake).iter_agreements())
    assert agreement.halo_id == evidence.EXPIRED_BUT_ACTIVE_CONTRACT["id"] and agreement.active is False


def test_a_bare_text_429_is_waited_out_by_the_clients_own_backoff() -> None:
    fake, clock = FakeHalo(lists={"invoice": ("invoices", evidence.invoice_rows(1, 3))}), FakeClock()
    limited = httpx.Response(429, text=evidence.RATE_LIMIT_TEXT, headers={"content-type": "text/plain"})
    fake.queue("/api/invoice", limited)
    client = make_client(fake, clock)
    assert _ids(client.iter_invoices()) == [1, 2, 3]
    assert client.stats.rate_limited_responses == 1 and 0 < client.stats.waited_s <= HaloConfig().backoff_cap_s


def test_a_500_on_the_order_gives_way_to_the_next_method_and_the_run_goes_on() -> None:
    rows = [{**row, "last_modified": f"2025-01-{row['id']:02d}T00:00:00Z"} for row in evidence.invoice_rows(1, 30)]
    fake = FakeHalo(lists={"invoice": ("invoices", rows)})
    unsortable = httpx.Response(500, json=evidence.BAD_ORDER_500)
    fake.queue("/api/invoice", unsortable, unsortable)  # both attempts at the sorted listing's first page
    report = ListingReport()
    client = make_client(fake, max_attempts=2)
    changed = _ids(client.iter_changed_invoices(since=datetime(2025, 1, 25, tzinfo=UTC), report=report))
    assert sorted(changed) == [25, 26, 27, 28, 29, 30] and report.method != Method.SORTED
    assert [method for method, _ in report.dropped][0] == Method.SORTED and "HTTP 500" in report.dropped[0][1]


def test_a_credit_note_in_a_listing_is_a_credit_neither_paid_nor_unpaid() -> None:
    fake = FakeHalo(lists={"invoice": ("invoices", [evidence.INVOICE_ROW_ZONELESS, evidence.CREDIT_NOTE])})
    fake.queue("/api/currency", httpx.Response(200, json=[{"id": 4, "name": "Australian Dollar", "code": "AUD"}]))
    client = make_client(fake)
    invoice, credit = _records(client.iter_invoices())
    assert credit.credit and not invoice.credit and credit.amount_due_cents == -24000
    assert _ids(client.iter_unpaid_invoices(filtered=False)) == [evidence.INVOICE_ROW_ZONELESS["id"]]
