"""Answers that make a client wait: a body dripped N bytes a second over the socket, Retry-After as a day or as an
HTTP date far in the future, and HaloPSA's bare-text 429 without any Retry-After."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from halo_emulator import FAULT_KINDS, FaultRule, HaloEmulator, serve
from tests.support.emulator_api import authorise

Api = Callable[..., httpx.Client]
FAR_FUTURE = "Fri, 31 Dec 2100 23:59:59 GMT"


@pytest.mark.parametrize(("retry_after", "header"), [(86400, "86400"), (FAR_FUTURE, FAR_FUTURE)])
def test_a_rate_limit_can_ask_for_a_day_or_name_a_date_far_ahead(api: Api, retry_after, header) -> None:
    emu = HaloEmulator(invoices=10, rate_limit=None)
    client = api(emu)
    emu.add_fault(FaultRule("rate_limit", retry_after=retry_after))
    refused = client.get("/api/Invoice")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == header
    assert FaultRule.from_json({"kind": "rate_limit", "retry_after": FAR_FUTURE}).retry_after == FAR_FUTURE


def test_a_bare_text_429_carries_no_retry_after(api: Api) -> None:
    emu = HaloEmulator(invoices=10, rate_limit=None)
    client = api(emu)
    emu.add_fault(FaultRule("rate_limit"))
    refused = client.get("/api/Invoice")
    assert refused.status_code == 429 and "retry-after" not in refused.headers
    assert refused.headers["content-type"].startswith("text/plain") and refused.text.startswith("Rate Limit Reached")


def test_a_dripped_answer_arrives_a_few_bytes_at_a_time_yet_whole() -> None:
    emu = HaloEmulator(invoices=10, rate_limit=None)
    assert "drip" in FAULT_KINDS
    rule = emu.add_fault(FaultRule("drip", path="/api/invoice", bytes_per_s=2000))
    with serve(emu) as server, httpx.Client(base_url=server.url, timeout=5) as client:
        authorise(client, emu)
        started = time.monotonic()
        with client.stream("GET", "/api/Invoice", params={"pageinate": "true", "page_size": 5}) as response:
            reads = [len(chunk) for chunk in response.iter_raw()]
        took = time.monotonic() - started
        assert response.status_code == 200 and rule.fired == 1
        length = int(response.headers["content-length"])
        assert sum(reads) == length and len(reads) > 1 and response.headers["connection"] == "close"
        assert took >= length / 2000 - 0.5  # it came at about 2,000 bytes a second (a slow reader reads more at once)
        assert client.get("/api/Invoice", params={"pageinate": "true", "page_size": 5}).json()["invoices"]


def test_a_drip_in_process_answers_at_once_and_the_rule_travels_as_json(api: Api) -> None:
    emu = HaloEmulator(invoices=10, rate_limit=None)
    client = api(emu)
    emu.add_fault(FaultRule.from_json({"kind": "drip", "path": "/api/invoice", "bytes_per_s": 1}))
    assert client.get("/api/Invoice").json()["invoices"]
