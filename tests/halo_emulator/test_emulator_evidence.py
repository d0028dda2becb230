"""The emulator, left at its defaults, answers in the shapes the public evidence shows (tests/support/evidence.py):
the token reply, list rows with `...Z` and zone-less times, a listing capped at 100 rows a page with its whole
`record_count`, agreements both `active` and `expired`, a bare-text 429, and credit notes; with a knob, a
`record_count` that is the page's length and a 500 on an `order` it cannot sort by."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from halo_emulator import HaloEmulator
from tests.support import evidence
from tests.support.clock import FakeClock

Api = Callable[..., httpx.Client]


def _page(client: httpx.Client, page_no: int, page_size: int) -> httpx.Response:
    return client.get("/api/Invoice", params={"pageinate": "true", "page_size": page_size, "page_no": page_no})


def test_the_token_reply_is_shaped_as_observed_on_a_live_tenant(api: Api) -> None:
    emu = HaloEmulator(invoices=10, granted_scopes=("read:customers", "read:contracts", "read:invoices"))
    response = api(emu, token=False).post("/auth/token", data={
        "grant_type": "client_credentials", "client_id": emu.client_id, "client_secret": emu.client_secret,
        "scope": "all"})  # fmt: skip

    body = response.json()
    assert response.status_code == 200 and set(body) == set(evidence.TOKEN_REPLY)
    assert evidence.same_types(body, evidence.TOKEN_REPLY, tuple(evidence.TOKEN_REPLY))
    assert (body["token_type"], body["expires_in"]) == (evidence.TOKEN_REPLY["token_type"], 3600)
    granted = body["scope"].split()
    assert tuple(granted[:5]) == evidence.IDENTITY_SCOPES == tuple(evidence.TOKEN_REPLY["scope"].split()[:5])
    assert granted[5:] == ["read:customers", "read:contracts", "read:invoices"]


def test_list_rows_write_their_times_zone_less_or_with_z_as_tenants_do(api: Api) -> None:
    emu = HaloEmulator(invoices=300, rate_limit=None)
    rows = [row for n in (1, 2, 3) for row in _page(api(emu), n, 100).json()["invoices"]]

    forms = {evidence.ZULU.pattern if evidence.ZULU.match(row["last_modified"]) else evidence.ZONELESS.pattern
             for row in rows}  # fmt: skip
    assert forms == {evidence.ZULU.pattern, evidence.ZONELESS.pattern}, "a mix of both forms by default"
    for row in rows:  # each row in one form throughout, the form the evidence shows
        form = evidence.ZULU if row["last_modified"].endswith("Z") else evidence.ZONELESS
        assert all(form.match(row[name]) for name in evidence.TIMESTAMP_FIELDS), row
    assert all(evidence.ZULU.match(evidence.INVOICE_ROW_ZULU[name]) for name in evidence.TIMESTAMP_FIELDS)
    assert all(evidence.ZONELESS.match(evidence.INVOICE_ROW_ZONELESS[name]) for name in evidence.TIMESTAMP_FIELDS)
    assert evidence.same_types(rows[0], evidence.INVOICE_ROW_ZONELESS, tuple(evidence.INVOICE_ROW_ZONELESS))


def test_a_listing_is_capped_at_100_rows_a_page_with_the_whole_record_count(api: Api) -> None:
    emu = HaloEmulator(invoices=evidence.CAPPED_LISTING_RECORDS, rate_limit=None)
    client = api(emu)

    first = _page(client, 1, 1000).json()  # HaloAPI's default page size, as in its issue 90
    expected = evidence.envelope(first["invoices"], record_count=evidence.CAPPED_LISTING_RECORDS,
                                 page_size=evidence.CAPPED_PAGE_ROWS)
    assert first == expected and len(first["invoices"]) == evidence.CAPPED_PAGE_ROWS
    pages = [_page(client, n, 1000).json()["invoices"] for n in range(1, 10)]
    assert [len(rows) for rows in pages] == [100] * 7 + [17, 0]
    assert [row["id"] for rows in pages for row in rows] == sorted(emu.invoices)


def test_record_count_can_be_the_pages_own_length_as_on_one_live_tenant(api: Api) -> None:
    size = evidence.PAGE_LENGTH_RECORD_COUNT
    emu = HaloEmulator(invoices=120, rate_limit=None, record_count_is_page_length=True)
    client = api(emu)

    pages = [_page(client, n, size).json() for n in (1, 2, 3)]
    assert [page["record_count"] for page in pages] == [size, size, 20]
    assert all(page == evidence.envelope(page["invoices"], record_count=len(page["invoices"]), page_no=n,
                                         page_size=size) for n, page in enumerate(pages, start=1))  # fmt: skip


def test_some_agreements_say_both_active_and_expired(api: Api) -> None:
    emu = HaloEmulator(invoices=1000, rate_limit=None)
    rows = api(emu).get("/api/ClientContract", params={"includeinactive": "true"}).json()["contracts"]

    both = [row for row in rows if row["active"] and row["expired"]]
    assert both and any(row["expired"] and not row["active"] for row in rows), "drawn per agreement by default"
    flags = {name: evidence.EXPIRED_BUT_ACTIVE_CONTRACT[name] for name in evidence.CONTRACT_FLAGS}
    assert all({name: row[name] for name in evidence.CONTRACT_FLAGS} == flags for row in both)
    shared = tuple(name for name in evidence.EXPIRED_BUT_ACTIVE_CONTRACT if name != "status")
    assert all(evidence.same_types(row, evidence.EXPIRED_BUT_ACTIVE_CONTRACT, shared) for row in both)
    assert all(row["end_date"].rstrip("Z") < emu.now.replace(tzinfo=None).isoformat() for row in both)


def test_a_429_is_bare_text_without_retry_after(api: Api) -> None:
    emu = HaloEmulator(invoices=10, clock=FakeClock())
    client = api(emu)

    refused = next(r for r in (client.get("/api/Client") for _ in range(301)) if r.status_code == 429)
    assert refused.text == evidence.RATE_LIMIT_TEXT
    assert refused.headers["content-type"].startswith("text/plain") and "retry-after" not in refused.headers


def test_an_order_the_tenant_cannot_sort_by_can_be_a_500(api: Api) -> None:
    emu = HaloEmulator(invoices=10, sortable_fields=frozenset({"id"}), unsortable_order_status=500)
    response = api(emu).get("/api/Invoice", params={"order": "last_modified", "orderdesc": "true"})

    assert response.status_code == 500 and response.json() == evidence.BAD_ORDER_500


def test_credit_notes_are_in_the_books_by_default(api: Api) -> None:
    emu = HaloEmulator(invoices=1000, rate_limit=None)
    rows = api(emu).get("/api/Invoice").json()["invoices"]

    credits = [row for row in rows if row["total"] < 0]
    assert len(credits) == round(1000 * emu.config.credit_note_share) > 0
    assert all(evidence.same_types(row, evidence.CREDIT_NOTE, evidence.CREDIT_FIELDS) for row in credits)
    for row in credits:
        assert row["posted"] and not row["voided"] and row["amountpaid"] == 0 and row["amountdue"] == row["total"]
        assert row["credit_outstanding"] == -row["total"] and row["credit_used"] == 0
