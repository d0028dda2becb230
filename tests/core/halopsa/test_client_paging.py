"""Listings: paging parameters and termination, streaming, duplicates, ordered windows, unpaid, lookups."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from core.errors import ProtocolError
from core.halopsa.paging import ListingReport, Method, rows_of
from tests.support.client_fakes import FakeHalo, invoice_row, make_client

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat()


def _fake(n: int, **fields) -> FakeHalo:
    return FakeHalo(lists={"invoice": ("invoices", [invoice_row(i, **fields) for i in range(1, n + 1)])})


def _ids(pages) -> list[int]:
    return [record.halo_id for page in pages for record in page.records]


def _pages_asked(fake: FakeHalo, path: str = "/api/invoice") -> list[tuple[str, str]]:
    return [(r.url.params["page_no"], r.url.params["page_size"]) for r in fake.api_requests(path)]


def test_listing_asks_for_pages_of_100_one_based_and_reads_them_all() -> None:
    fake = _fake(250)
    client = make_client(fake)
    pages = list(client.iter_invoices())
    assert _ids(pages) == list(range(1, 251))
    assert [(p.page_no, len(p.records), p.record_count) for p in pages] == [(1, 100, 250), (2, 100, 250),
                                                                            (3, 50, 250)]  # fmt: skip
    first = fake.api_requests("/api/invoice")[0]
    assert first.url.params["pageinate"] == "true"
    assert _pages_asked(fake) == [("1", "100"), ("2", "100"), ("3", "100")]
    assert client.stats.pages == 3


def test_an_exact_multiple_ends_on_the_empty_page_after_the_last_full_one() -> None:
    # record_count cannot end a listing: one tenant reports the page's length there (reference 11)
    fake = _fake(200)
    assert len(_ids(make_client(fake, page_size=100).iter_invoices())) == 200
    assert _pages_asked(fake) == [("1", "100"), ("2", "100"), ("3", "100")]


def test_without_record_count_a_short_page_ends_the_listing() -> None:
    fake = _fake(250)
    fake.with_record_count = False
    assert len(_ids(make_client(fake, page_size=100).iter_invoices())) == 250
    assert len(fake.api_requests("/api/invoice")) == 3


def test_without_record_count_a_server_that_ignores_page_no_does_not_loop_forever() -> None:
    rows = [invoice_row(i) for i in range(1, 101)]
    fake = FakeHalo()
    fake.lists["invoice"] = ("invoices", rows)
    fake.with_record_count = False
    fake.queue("/api/invoice", *[httpx.Response(200, json=rows)] * 5)
    assert _ids(make_client(fake, page_size=100).iter_invoices()) == list(range(1, 101))
    assert len(fake.api_requests("/api/invoice")) == 2


def test_a_server_page_size_cap_is_adopted() -> None:
    fake = _fake(950)
    fake.page_size_cap = 100
    client = make_client(fake, page_size=1000)
    assert _ids(client.iter_invoices()) == list(range(1, 951))
    assert _pages_asked(fake)[:2] == [("1", "1000"), ("2", "100")]
    assert len(fake.api_requests("/api/invoice")) == 10


def test_pages_stream_one_request_at_a_time() -> None:
    fake = _fake(300)
    pages = make_client(fake, page_size=100).iter_invoices()
    assert fake.api_requests("/api/invoice") == []
    first = next(pages)
    assert len(first.records) == 100
    assert len(fake.api_requests("/api/invoice")) == 1


def test_rows_shifting_between_pages_are_not_listed_twice() -> None:
    fake = _fake(300)
    rows = fake.lists["invoice"][1]

    def shift_then_serve(request: httpx.Request) -> httpx.Response:
        rows.insert(0, invoice_row(999))  # a new invoice pushes every row one place down
        return fake._list(request, "invoices", rows)

    fake.queue("/api/invoice", lambda r: fake._list(r, "invoices", rows), shift_then_serve)
    ids = _ids(make_client(fake, page_size=100).iter_invoices())
    assert len(ids) == len(set(ids))
    assert set(range(1, 301)) <= set(ids)


def test_a_malformed_record_is_reported_and_the_listing_carries_on() -> None:
    fake = _fake(5)
    rows = fake.lists["invoice"][1]
    rows[1]["total"] = "lots"
    rows[3] = {"id": None, "total": 1}
    pages = list(make_client(fake).iter_invoices())
    assert _ids(pages) == [1, 3, 5]
    errors = pages[0].errors
    assert [(e.entity, e.halo_id) for e in errors] == [("invoice", 2), ("invoice", None)]
    assert "lots" in errors[0].reason
    assert "id" in errors[1].reason


@pytest.mark.parametrize(
    "body",
    [
        [invoice_row(1), invoice_row(2)],
        {"record_count": 2, "rows": [invoice_row(1), invoice_row(2)], "columns": ["a", "b"]},
        {"record_count": 2, "invoices": [invoice_row(1), invoice_row(2)]},
    ],
)
def test_rows_are_read_from_a_bare_array_the_entity_key_or_the_first_array_of_objects(body) -> None:
    rows, _ = rows_of(body, "invoices")
    assert [row["id"] for row in rows] == [1, 2]


@pytest.mark.parametrize("body", ["text", 42, {"record_count": 3}, {"invoices": "nope", "record_count": 1}])
def test_a_body_without_rows_is_a_protocol_error(body) -> None:
    fake = _fake(1)
    fake.queue("/api/invoice", httpx.Response(200, json=body))
    with pytest.raises(ProtocolError):
        list(make_client(fake).iter_invoices())


def test_a_listing_that_does_not_exist_is_a_protocol_error_at_once() -> None:
    fake = FakeHalo()
    client = make_client(fake)
    with pytest.raises(ProtocolError, match="404"):
        list(client.iter_invoices())
    assert client.stats.retries == 0


def test_customers_and_agreements_include_inactive_ones() -> None:
    fake = FakeHalo(
        lists={
            "client": ("clients", [{"id": 1, "name": "Acme", "inactive": True}]),
            "clientcontract": ("contracts", [{"id": 5, "ref": "MSA", "client_id": 1}]),
        }
    )
    client = make_client(fake)
    assert [c.name for c in _records(client.iter_customers())] == ["Acme"]
    assert [a.ref for a in _records(client.iter_agreements())] == ["MSA"]
    for path in ("/api/client", "/api/clientcontract"):
        assert fake.api_requests(path)[0].url.params["includeinactive"] == "true"


def _records(pages):
    return [record for page in pages for record in page.records]


# -- ordered windows ---------------------------------------------------------------------------------------------


def _modified_fake(n: int) -> FakeHalo:
    """Invoice i was last modified i hours after T0; natural order is by id (oldest first)."""
    rows = [invoice_row(i, last_modified=_stamp(T0 + timedelta(hours=i))) for i in range(1, n + 1)]
    return FakeHalo(lists={"invoice": ("invoices", rows)})


def test_changed_invoices_read_newest_first_and_stop_at_the_window_start() -> None:
    fake = _modified_fake(1000)
    since = T0 + timedelta(hours=751)
    pages = list(make_client(fake, page_size=100).iter_changed_invoices(since=since))
    assert sorted(_ids(pages)) == list(range(751, 1001))
    asked = fake.api_requests("/api/invoice")
    assert (asked[0].url.params["order"], asked[0].url.params["orderdesc"]) == ("last_modified", "true")
    assert len(asked) == 3  # pages 1-3 hold 1000..701; page 3 reaches below the window start


def test_changed_since_includes_a_record_modified_exactly_at_the_start() -> None:
    fake = _modified_fake(10)
    assert 5 in _ids(make_client(fake).iter_changed_invoices(since=T0 + timedelta(hours=5)))


def test_a_naive_since_means_utc() -> None:
    fake = _modified_fake(10)
    naive = (T0 + timedelta(hours=8)).replace(tzinfo=None)
    assert sorted(_ids(make_client(fake).iter_changed_invoices(since=naive))) == [8, 9, 10]


def test_an_instance_that_ignores_order_and_the_date_filter_gets_a_full_scan_filtered_here() -> None:
    fake = _modified_fake(1000)
    fake.honour_order = False
    since = T0 + timedelta(hours=990)
    report = ListingReport()
    pages = list(make_client(fake, page_size=100).iter_changed_invoices(since=since, report=report))
    assert sorted(_ids(pages)) == list(range(990, 1001))
    assert len(fake.api_requests("/api/invoice")) == 12  # the unsorted page, then the ten pages and the empty one
    assert report.method == Method.SCAN


def test_order_broken_only_across_pages_also_gives_way_to_the_next_method() -> None:
    # Each page is sorted on its own, but page 2 starts newer than page 1 ended: the server is not sorting.
    hours = [50, 40, 30, 45, 35, 25, 5, 4, 3, 60]
    rows = [invoice_row(i + 1, last_modified=_stamp(T0 + timedelta(hours=h))) for i, h in enumerate(hours)]
    fake = FakeHalo(lists={"invoice": ("invoices", rows)}, honour_order=False)
    since = T0 + timedelta(hours=28)
    report = ListingReport()
    ids = _ids(make_client(fake, page_size=3).iter_changed_invoices(since=since, report=report))
    assert sorted(ids) == [1, 2, 3, 4, 5, 10]
    assert len(fake.api_requests("/api/invoice")) == 6  # two sorted pages, then the date filter's four
    assert report.dropped[0][0] == Method.SORTED and report.method == Method.DATESEARCH  # too recent to tell


def test_invoices_created_since_a_date_stop_at_that_date() -> None:
    rows = [invoice_row(i, invoice_date=_stamp(T0 + timedelta(days=i))) for i in range(1, 301)]
    fake = FakeHalo(lists={"invoice": ("invoices", rows)})
    created_since = (T0 + timedelta(days=251)).date()
    ids = _ids(make_client(fake, page_size=20).iter_invoices(created_since=created_since))
    assert sorted(ids) == list(range(251, 301))
    first = fake.api_requests("/api/invoice")[0]
    assert (first.url.params["order"], first.url.params["orderdesc"]) == ("invoice_date", "true")
    assert len(fake.api_requests("/api/invoice")) == 3


def test_invoices_without_a_date_are_outside_any_created_since_window() -> None:
    rows = [invoice_row(1, invoice_date="1900-01-01T00:00:00"), invoice_row(2, invoice_date="2025-05-01T00:00:00")]
    fake = FakeHalo(lists={"invoice": ("invoices", rows)})
    assert _ids(make_client(fake).iter_invoices(created_since=date(2025, 1, 1))) == [2]


def test_changed_customers_sort_by_their_last_update() -> None:
    rows = [{"id": i, "name": f"C{i}", "alastupdate": _stamp(T0 + timedelta(days=i))} for i in range(1, 51)]
    fake = FakeHalo(lists={"client": ("clients", rows)})
    ids = _ids(make_client(fake, page_size=10).iter_changed_customers(since=T0 + timedelta(days=45)))
    assert sorted(ids) == [45, 46, 47, 48, 49, 50]
    first = fake.api_requests("/api/client")[0]
    assert (first.url.params["order"], first.url.params["orderdesc"]) == ("alastupdate", "true")
    assert len(fake.api_requests("/api/client")) == 1


# -- unpaid, single invoice, lookup ------------------------------------------------------------------------------


def test_unpaid_uses_the_server_filter_and_verifies_here() -> None:
    rows = [
        invoice_row(1, amountdue=50.0),
        invoice_row(2, amountdue=0.0, amountpaid=100.0),
        invoice_row(3, amountdue=20.0, voided=True),
        invoice_row(4, amountdue=0.004),
        invoice_row(5, amountdue=0.01),
    ]
    fake = FakeHalo(lists={"invoice": ("invoices", rows)})
    assert _ids(make_client(fake).iter_unpaid_invoices()) == [1, 5]
    assert fake.api_requests("/api/invoice")[0].url.params["paymentstatuses"] == "0,1"


def test_unpaid_without_status_codes_scans_everything() -> None:
    fake = _fake(3)
    assert _ids(make_client(fake, unpaid_payment_statuses="").iter_unpaid_invoices()) == [1, 2, 3]
    assert "paymentstatuses" not in fake.api_requests("/api/invoice")[0].url.params


def test_get_invoice_reads_the_bare_object_and_none_when_missing() -> None:
    fake = FakeHalo()
    fake.queue("/api/invoice/7", httpx.Response(200, json=invoice_row(7, amountdue=12.34)))
    fake.queue("/api/invoice/8", httpx.Response(404))
    client = make_client(fake)
    invoice = client.get_invoice(7)
    assert invoice is not None and invoice.amount_due_cents == 1234
    assert client.get_invoice(8) is None


def test_agreements_carry_their_subtype_id_and_the_lookup_is_asked_for_the_id_given() -> None:
    lookup = [{"id": 1, "name": "Managed Services", "lookupid": 77}, {"id": 3, "name": "Microsoft 365", "lookupid": 77},
              {"id": 9, "name": "High", "lookupid": 33}]  # fmt: skip
    contracts = [{"id": 10, "subtype": 1, "subtype_name": "Not a field HaloPSA has"}, {"id": 11, "subtype": 0},
                 {"id": 12, "subtype": 3}]  # fmt: skip
    fake = FakeHalo(lists={"clientcontract": ("contracts", contracts)})
    fake.queue("/api/lookup", httpx.Response(200, json=lookup))
    client = make_client(fake)
    agreements = _records(client.iter_agreements())
    assert [a.subtype_id for a in agreements] == [1, None, 3]
    assert not fake.api_requests("/api/lookup"), "reading agreements asks no lookup"
    found = client.subtype_lookup(77, {1, 3})
    assert found.verified and dict(found.names) == {1: "Managed Services", 3: "Microsoft 365"}
    (asked,) = fake.api_requests("/api/lookup")
    assert asked.url.params["lookupid"] == "77"


@pytest.mark.parametrize(
    ("reply", "why"), [
        (httpx.Response(404), "has no such lookup"),
        (httpx.Response(403), "refused access to /api/Lookup"),
        (httpx.Response(400), "refused GET /api/Lookup (HTTP 400)"),
        (httpx.Response(200, json={"x": 1}), "without 'lookup'"),
    ],
)
def test_an_unavailable_lookup_is_not_verified_and_says_why(reply, why) -> None:
    fake = FakeHalo()
    fake.queue("/api/lookup", reply)
    found = make_client(fake).subtype_lookup(77, {1})
    assert not found.verified and not found.names
    assert found.finding.startswith("Lookup 77 could not be read: ") and why in found.finding


def test_id_set_remembers_dense_sparse_and_odd_ids():
    from core.halopsa.paging import IdSet

    ids = IdSet()
    values = [1, 2, 7, 8, 9, 100_000, 3_000_001, 1 << 40, 0, -5]
    for value in values:
        assert value not in ids
        ids.add(value)
    assert all(value in ids for value in values)
    assert all(value not in ids for value in (3, 10, 99_999, 3_000_000, (1 << 40) + 1, -4))
