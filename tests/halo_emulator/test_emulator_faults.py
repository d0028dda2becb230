"""The rate limiter and every injected fault kind, over MockTransport."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import httpx
import pytest

from core.halopsa.records import RecordError, parse_invoice
from halo_emulator import FAULT_KINDS, FaultRule, HaloEmulator
from tests.support.clock import FakeClock

Api = Callable[..., httpx.Client]
PAGE = {"pageinate": "true", "page_size": 10}


def limited(clock: FakeClock, **overrides: object) -> HaloEmulator:
    return HaloEmulator(invoices=10, rate_limit=(5, 1.0), clock=clock, **overrides)


# ---- the real limiter ----------------------------------------------------------------------------------------------


def test_rate_limit_refuses_the_sixth_request_in_the_window(api: Api, clock: FakeClock) -> None:
    emu = limited(clock, retry_after_header=True)
    client = api(emu)
    assert [client.get("/api/Client").status_code for _ in range(5)] == [200] * 5
    refused = client.get("/api/Client")
    assert refused.status_code == 429
    assert refused.text == "Rate Limit Reached - 5 Requests per rolling 1 second window"
    assert refused.headers["Retry-After"] == "1"
    assert emu.stats.rate_limited == 1


def test_retry_after_counts_down_to_the_oldest_request_leaving(api: Api, clock: FakeClock) -> None:
    emu = HaloEmulator(invoices=10, rate_limit=(3, 300.0), clock=clock, retry_after_header=True)
    client = api(emu)
    for _ in range(3):
        client.get("/api/Client")
        clock.tick(10)
    assert client.get("/api/Client").headers["Retry-After"] == "270"  # the first left at t=0, now t=30
    clock.tick(269.5)
    assert client.get("/api/Client").status_code == 429
    clock.tick(0.5)
    assert client.get("/api/Client").status_code == 200


def test_window_rolls_and_refusals_do_not_count(api: Api, clock: FakeClock) -> None:
    emu = limited(clock)
    client = api(emu)
    for _ in range(5):
        client.get("/api/Client")
    assert client.get("/api/Client").status_code == 429
    assert client.get("/api/Client").status_code == 429
    clock.tick(1.0)
    assert [client.get("/api/Client").status_code for _ in range(6)] == [200] * 5 + [429]


def test_a_429_carries_no_retry_after_by_default(api: Api, clock: FakeClock) -> None:
    emu = limited(clock)  # no evidence shows HaloPSA sending one (reference section 11)
    client = api(emu)
    responses = [client.get("/api/Client") for _ in range(6)]
    assert responses[-1].status_code == 429 and "Retry-After" not in responses[-1].headers


def test_hosted_default_message(api: Api, clock: FakeClock) -> None:
    emu = HaloEmulator(invoices=10, rate_limit=(2, 300.0), clock=clock)
    client = api(emu)
    responses = [client.get("/api/Invoice") for _ in range(3)]
    assert responses[-1].text == "Rate Limit Reached - 2 Requests per rolling 5 minute window"


def test_token_requests_count_only_when_configured(api: Api, clock: FakeClock) -> None:
    assert api(limited(clock)).get("/api/Client").status_code == 200
    emu = limited(clock, count_token_requests=True)
    client = api(emu)  # one token request
    assert [client.get("/api/Client").status_code for _ in range(5)] == [200] * 4 + [429]


def test_rate_limit_can_be_switched_off(api: Api) -> None:
    client = api(HaloEmulator(invoices=10, rate_limit=None))
    assert {client.get("/api/Client").status_code for _ in range(400)} == {200}


# ---- rule matching -------------------------------------------------------------------------------------------------


def test_rules_match_path_method_page_and_skip_then_hit(api: Api) -> None:
    emu = HaloEmulator(invoices=100, rate_limit=None)
    client = api(emu)
    rule = emu.add_fault(FaultRule("status", path="/API/Invoice", status=500, after=1, times=2, on_page=2))
    assert client.get("/api/InvoicePayment", params={**PAGE, "page_no": 2}).status_code == 200, "not a sub-path"
    assert client.get("/api/Invoice", params={**PAGE, "page_no": 1}).status_code == 200
    statuses = [client.get("/api/invoice", params={**PAGE, "page_no": 2}).status_code for _ in range(4)]
    assert statuses == [200, 500, 500, 200]
    assert (rule.seen, rule.fired) == (4, 2)
    emu.clear_faults()
    method_rule = emu.add_fault(FaultRule("status", method="POST", times=None))
    assert client.get("/api/Client").status_code == 200
    assert client.post("/api/Webhook", json=[{"name": "x"}]).status_code == 500
    assert method_rule.fired == 1


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultRule("explode")
    with pytest.raises(ValueError, match="on_request"):
        FaultRule("mutate")


# ---- each kind -----------------------------------------------------------------------------------------------------


def test_rate_limit_fault_with_and_without_retry_after(api: Api) -> None:
    emu = HaloEmulator(invoices=10)
    client = api(emu)
    emu.add_fault(FaultRule("rate_limit", retry_after=30))
    first = client.get("/api/Invoice")
    assert first.status_code == 429 and first.headers["Retry-After"] == "30" and "Rate Limit Reached" in first.text
    emu.add_fault(FaultRule("rate_limit"))
    assert "Retry-After" not in client.get("/api/Invoice").headers
    assert client.get("/api/Invoice").status_code == 200
    assert emu.stats.rate_limited == 2


@pytest.mark.parametrize("status", [500, 502, 503])
def test_status_fault(api: Api, status: int) -> None:
    emu = HaloEmulator(invoices=10)
    client = api(emu)
    emu.add_fault(FaultRule("status", status=status, retry_after=5))
    response = client.get("/api/Invoice")
    assert response.status_code == status and response.headers["Retry-After"] == "5" and response.content
    assert client.get("/api/Invoice").status_code == 200


def test_slow_fault_sleeps_with_the_injected_sleep(api: Api, clock: FakeClock) -> None:
    emu = HaloEmulator(invoices=10, clock=clock, sleep=clock.sleep)
    client = api(emu)
    emu.add_fault(FaultRule("slow", delay_s=2.5))
    assert client.get("/api/Invoice").status_code == 200
    assert clock.sleeps == [2.5]


def test_slow_fault_beyond_the_client_timeout_times_out_at_once(api: Api, clock: FakeClock) -> None:
    emu = HaloEmulator(invoices=10, clock=clock, sleep=clock.sleep)
    client = api(emu)
    emu.add_fault(FaultRule("slow", delay_s=60))
    with pytest.raises(httpx.ReadTimeout):
        client.get("/api/Invoice", timeout=5)
    assert clock.sleeps == []


def test_timeout_fault(api: Api) -> None:
    emu = HaloEmulator(invoices=10)
    client = api(emu)
    emu.add_fault(FaultRule("timeout", path="/api/invoice"))
    with pytest.raises(httpx.ReadTimeout):
        client.get("/api/Invoice")
    assert client.get("/api/Invoice").status_code == 200


def test_drop_fault(api: Api) -> None:
    emu = HaloEmulator(invoices=10)
    client = api(emu)
    emu.add_fault(FaultRule("drop"))
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/api/Invoice")
    assert client.get("/api/Invoice").status_code == 200


def test_truncated_body_is_half_the_json(api: Api) -> None:
    emu = HaloEmulator(invoices=50)
    client = api(emu)
    whole = client.get("/api/Invoice", params=PAGE).content
    emu.add_fault(FaultRule("truncated"))
    cut = client.get("/api/Invoice", params=PAGE)
    assert cut.status_code == 200 and cut.content == whole[: len(whole) // 2]
    with pytest.raises(json.JSONDecodeError):
        cut.json()


def test_malformed_json_is_an_html_page_with_200(api: Api) -> None:
    emu = HaloEmulator(invoices=10)
    client = api(emu)
    emu.add_fault(FaultRule("malformed_json"))
    response = client.get("/api/Invoice")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        response.json()


@pytest.mark.parametrize(("field", "bad"), [(None, "abc"), ("invoice_date", "not-a-date"), ("id", None)])
def test_malformed_record_spoils_one_record_only(api: Api, field: str | None, bad: object) -> None:
    emu = HaloEmulator(invoices=50, timestamp_form="zoneless")  # served rows compared with the stored ones
    client = api(emu)
    rule = emu.add_fault(FaultRule("malformed_record", path="/api/invoice", field=field))
    rows = client.get("/api/Invoice", params=PAGE).json()["invoices"]
    spoiled = rows[len(rows) // 2]
    assert spoiled[field or "total"] == bad
    assert rule.corrupted_ids == [emu.invoices[rule.corrupted_ids[0]]["id"]]
    with pytest.raises(RecordError):
        parse_invoice(spoiled)
    good = [r for r in rows if r is not spoiled and r != spoiled]
    assert len(good) == len(rows) - 1 and all(r == emu.invoices[r["id"]] for r in good)
    assert emu.invoices[rule.corrupted_ids[0]][field or "total"] != bad, "the stored record is intact"


def test_token_expiry_fault_expires_tokens_after_answering(api: Api) -> None:
    emu = HaloEmulator(invoices=10)
    client = api(emu)
    emu.add_fault(FaultRule("token_expiry", path="/api/invoice"))
    assert client.get("/api/Invoice").status_code == 200
    assert client.get("/api/Invoice").status_code == 401


def test_mutate_fault_changes_records_between_pages(api: Api) -> None:
    emu = HaloEmulator(invoices=100, rate_limit=None)
    client = api(emu)
    newest_first = {**PAGE, "order": "id", "orderdesc": "true"}
    emu.add_fault(FaultRule("mutate", path="/api/invoice", on_page=1, on_request=lambda e, _: e.add_invoice()))
    first = client.get("/api/Invoice", params={**newest_first, "page_no": 1}).json()["invoices"]
    second = client.get("/api/Invoice", params={**newest_first, "page_no": 2}).json()["invoices"]
    assert first[-1]["id"] == second[0]["id"], "the new invoice pushed a record onto the next page"
    assert second[0]["id"] in {r["id"] for r in first}


def test_every_kind_has_a_test() -> None:
    tested = {"rate_limit", "status", "slow", "timeout", "drop", "truncated", "malformed_json", "malformed_record"}
    elsewhere = {"drip"}  # tests/halo_emulator/test_emulator_slow_answers.py
    elsewhere |= {"oversize"}  # tests/halo_emulator/test_emulator_listing.py
    assert tested | {"token_expiry", "mutate"} | elsewhere == FAULT_KINDS


# ---- bookkeeping and threads ---------------------------------------------------------------------------------------


def test_stats_log_the_paging_parameters(api: Api) -> None:
    emu = HaloEmulator(invoices=30, rate_limit=None)
    client = api(emu)
    for page_no in (1, 2):
        client.get("/api/Invoice", params={"pageinate": "true", "page_size": 20, "page_no": page_no})
    entries = emu.stats.entries("/api/invoice")
    logged = [(e.method, e.query["page_no"], e.query["page_size"]) for e in entries]
    assert logged == [("GET", "1", "20"), ("GET", "2", "20")]
    assert emu.stats.by_path["/api/invoice"] == 2 and emu.stats.requests == 3  # plus the token


def test_concurrent_clients_see_consistent_pages(api: Api) -> None:
    emu = HaloEmulator(invoices=500, rate_limit=None)
    failures: list[str] = []

    def page_through() -> None:
        client = api(emu)
        seen = []
        for page_no in range(1, 6):
            body = client.get("/api/Invoice", params={"pageinate": "true", "page_size": 100, "page_no": page_no})
            seen.extend(r["id"] for r in body.json()["invoices"])
        if seen != sorted(emu.invoices)[:500]:
            failures.append("pages differ")

    def write() -> None:
        for _ in range(20):
            payable = (i for i, r in emu.invoices.items() if r["amountdue"] > 0 and r["posted"] and not r["voided"])
            emu.pay_invoice(next(payable))

    threads = [threading.Thread(target=page_through) for _ in range(6)] + [threading.Thread(target=write)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert emu.stats.by_path["/api/invoice"] == 30
