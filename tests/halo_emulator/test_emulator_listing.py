"""Listing knobs for tenants that page, count, sort and filter unlike the documentation (reference section 11):
`record_count` as the page length, an unsortable `order` answered 400/500 or ignored, `datesearch`, pages longer than
asked, and an oversized answer streamed over a socket."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from halo_emulator import FaultRule, HaloEmulator, serve
from tests.support.emulator_api import authorise

Api = Callable[..., httpx.Client]
PAGED = {"pageinate": "true"}


def _page(client: httpx.Client, page_no: int, page_size: int = 100, **params: str) -> dict:
    response = client.get("/api/Invoice", params={**PAGED, "page_size": page_size, "page_no": page_no, **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_record_count_can_report_the_page_length(api: Api) -> None:
    emu = HaloEmulator(invoices=250, rate_limit=None, record_count_is_page_length=True)
    client = api(emu)
    assert [_page(client, n)["record_count"] for n in (1, 2, 3, 4)] == [100, 100, 50, 0]
    assert _page(api(HaloEmulator(invoices=250, rate_limit=None)), 1)["record_count"] == 250


@pytest.mark.parametrize("status", [400, 500])
def test_an_unsortable_order_can_be_refused(api: Api, status: int) -> None:
    emu = HaloEmulator(invoices=50, rate_limit=None, sortable_fields=frozenset({"id"}),
                       unsortable_order_status=status)
    client = api(emu)
    refused = client.get("/api/Invoice", params={"order": "last_modified", "orderdesc": "true"})
    assert refused.status_code == status
    assert "last_modified" in refused.text
    assert client.get("/api/Invoice", params={"order": "id"}).status_code == 200
    assert client.get("/api/Invoice").status_code == 200


def test_an_unsortable_order_status_must_be_an_error() -> None:
    with pytest.raises(ValueError, match="unsortable_order_status"):
        HaloEmulator(invoices=50, unsortable_order_status=200)


def _modified(row: dict) -> datetime:
    """A row's `last_modified`, zone-less or `...Z` on the wire, as a UTC moment."""
    moment = datetime.fromisoformat(row["last_modified"])
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def test_datesearch_filters_by_the_named_field_when_the_build_has_it(api: Api) -> None:
    emu = HaloEmulator(invoices=400, rate_limit=None, datesearch=True)
    stamps = sorted(_modified(row) for row in emu.invoices.values())
    start = stamps[300]
    params = {"datesearch": "last_modified", "start_date": start.isoformat()}
    rows = api(emu).get("/api/Invoice", params=params).json()["invoices"]
    assert {row["id"] for row in rows} == {i for i, row in emu.invoices.items() if _modified(row) >= start}
    end = stamps[350]
    bounded = api(emu).get("/api/Invoice", params={**params, "end_date": end.isoformat()}).json()
    assert all(start <= _modified(row) <= end for row in bounded["invoices"])
    assert bounded["record_count"] == len(bounded["invoices"]) < len(rows)
    day = api(emu).get("/api/Invoice", params={**params, "start_date": (start + timedelta(days=1)).date().isoformat()})
    assert all(_modified(row) >= datetime.combine(start.date() + timedelta(days=1), datetime.min.time(), UTC)
               for row in day.json()["invoices"])
    bad = api(emu).get("/api/Invoice", params={**params, "start_date": "yesterday"})
    assert bad.status_code == 400


def test_datesearch_is_ignored_by_default(api: Api) -> None:
    emu = HaloEmulator(invoices=100, rate_limit=None)
    params = {"datesearch": "last_modified", "start_date": "2100-01-01T00:00:00"}
    assert len(api(emu).get("/api/Invoice", params=params).json()["invoices"]) == 100


def test_an_instance_can_ignore_paging_and_send_everything(api: Api) -> None:
    emu = HaloEmulator(invoices=450, rate_limit=None, ignore_paging=True)
    client = api(emu)
    for page_no in (1, 2):
        body = _page(client, page_no)
        assert len(body["invoices"]) == 450 and body["record_count"] == 450


def test_an_instance_can_page_by_its_own_larger_size(api: Api) -> None:
    emu = HaloEmulator(invoices=450, rate_limit=None, served_page_size=200)
    client = api(emu)
    pages = [_page(client, n)["invoices"] for n in (1, 2, 3, 4)]
    assert [len(rows) for rows in pages] == [200, 200, 50, 0]
    assert [row["id"] for rows in pages for row in rows] == sorted(emu.invoices)


def test_an_oversized_answer_is_streamed_without_a_length_and_never_held_whole() -> None:
    emu = HaloEmulator(invoices=20, rate_limit=None)
    rule = emu.add_fault(FaultRule(kind="oversize", path="/api/invoice", size_bytes=50 * 2**20))
    with serve(emu) as server, httpx.Client(base_url=server.url) as client:
        authorise(client, emu)
        received = 0
        with client.stream("GET", "/api/Invoice", params=PAGED) as response:
            assert response.status_code == 200
            assert "content-length" not in response.headers
            assert response.headers["transfer-encoding"] == "chunked"
            for chunk in response.iter_raw():
                received += len(chunk)
                if received > 2**20:
                    break  # a client that gives up: the server stops writing
        assert rule.fired == 1
        assert _page(client, 1)["record_count"] == 20  # the connection pool and the server carry on
    full = HaloEmulator(invoices=20, rate_limit=None)
    full.add_fault(FaultRule(kind="oversize", path="/api/invoice", size_bytes=3 * 2**20))
    with serve(full) as server, httpx.Client(base_url=server.url) as client:
        authorise(client, full)
        body = client.get("/api/Invoice", params=PAGED)
        assert len(body.content) == 3 * 2**20
        assert len(body.json()["invoices"]) == 20  # still a readable listing, padded to the size
