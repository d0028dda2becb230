"""Retries: what is retried, how long the client waits, what it reports, and the errors once attempts run out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from core.errors import HaloError, HaloUnavailable, ProtocolError, RateLimited
from core.halopsa.client import ClientEvent
from core.halopsa.transport import retry_after_seconds
from tests.support.client_fakes import FakeHalo, invoice_row, make_client
from tests.support.clock import FakeClock


def _fake() -> FakeHalo:
    return FakeHalo(lists={"invoice": ("invoices", [invoice_row(1), invoice_row(2)])})


def _ids(client) -> list[int]:
    return [invoice.halo_id for page in client.iter_invoices() for invoice in page.records]


def _truncated(request: httpx.Request) -> httpx.Response:
    body = b'{"record_count": 2, "invoices": [{"id": 1, "tot'
    return httpx.Response(200, content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500),
        httpx.Response(502),
        httpx.Response(503),
        httpx.Response(504),
        httpx.ReadTimeout("slow"),
        httpx.ConnectTimeout("slow"),
        httpx.ConnectError("refused"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
        _truncated,
        httpx.Response(200, text="<html>Service Unavailable</html>"),
    ],
    ids=lambda f: f.__class__.__name__ if not isinstance(f, httpx.Response) else f"http{f.status_code}",
)
def test_transient_failures_are_retried_until_the_listing_completes(failure) -> None:
    fake, clock, events = _fake(), FakeClock(), []
    fake.queue("/api/invoice", failure, failure)
    client = make_client(fake, clock, events=events)
    assert _ids(client) == [1, 2]
    assert client.stats.retries == 2
    assert len(fake.api_requests("/api/invoice")) == 4  # two failures, the short first page, once more to end it
    assert [e.kind for e in events] == ["retry", "retry"]
    # capped exponential backoff with up to 1 s jitter: 1-2 s, then 2-3 s
    assert 1 <= clock.sleeps[0] <= 2 and 2 <= clock.sleeps[1] <= 3
    assert client.stats.waited_s == pytest.approx(sum(clock.sleeps))


def test_a_429_waits_at_least_the_retry_after_and_is_reported_as_rate_limiting() -> None:
    fake, clock, events = _fake(), FakeClock(), []
    fake.queue("/api/invoice", httpx.Response(429, headers={"Retry-After": "30"}, text="Rate Limit Reached"))
    client = make_client(fake, clock, events=events)
    assert _ids(client) == [1, 2]
    assert clock.sleeps == [30.0]
    assert events == [
        ClientEvent(kind="retry", seconds=30.0, reason="HaloPSA is rate limiting this tenant; retrying in 30 s",
                    status_code=429)
    ]  # fmt: skip
    assert events[0].kind == "retry" and events[0].status_code == 429
    assert client.stats.rate_limited_responses == 1


def test_retry_after_shorter_than_the_backoff_does_not_shorten_it() -> None:
    fake, clock = _fake(), FakeClock()
    fake.queue("/api/invoice", httpx.Response(503), httpx.Response(429, headers={"Retry-After": "0"}))
    client = make_client(fake, clock)
    _ids(client)
    assert 2 <= clock.sleeps[1] <= 3


def test_a_429_without_retry_after_backs_off_exponentially() -> None:
    fake, clock = _fake(), FakeClock()
    fake.queue("/api/invoice", *[httpx.Response(429)] * 4)
    _ids(make_client(fake, clock))
    assert [int(s) for s in clock.sleeps] == [1, 2, 4, 8]


def test_backoff_is_capped() -> None:
    fake, clock = _fake(), FakeClock()
    fake.queue("/api/invoice", *[httpx.Response(503)] * 7)
    _ids(make_client(fake, clock, max_attempts=8, backoff_cap_s=5))
    assert max(clock.sleeps) <= 5
    assert clock.sleeps[-3:] == [5, 5, 5]


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=42), usegmt=True), now=now) == 42
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=5), usegmt=True), now=now) == 0
    assert retry_after_seconds("7.5") == 7.5
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_persistent_rate_limiting_ends_in_rate_limited_with_the_servers_hint() -> None:
    fake, clock = _fake(), FakeClock()
    fake.queue("/api/invoice", *[httpx.Response(429, headers={"Retry-After": "12"})] * 6)
    client = make_client(fake, clock)
    with pytest.raises(RateLimited) as caught:
        _ids(client)
    assert caught.value.retry_after == 12
    assert caught.value.transient
    assert "rate limiting" in caught.value.message
    assert len(fake.api_requests("/api/invoice")) == 6  # settings.max_attempts
    assert clock.sleeps[:4] == [12.0] * 4  # the hint wins until the backoff (16-17 s) outgrows it
    assert 16 <= clock.sleeps[4] <= 17
    assert client.stats.rate_limited_responses == 6


def test_persistent_5xx_ends_in_halo_unavailable_with_a_readable_message() -> None:
    fake = _fake()
    fake.queue("/api/invoice", *[httpx.Response(503)] * 6)
    with pytest.raises(HaloUnavailable) as caught:
        _ids(make_client(fake))
    assert caught.value.message == (
        "HaloPSA did not answer (HTTP 503) after 6 attempts; it may be down. The sync will retry on its next run; "
        "check https://status.halopsa.com or try again later."
    )


@pytest.mark.parametrize(
    ("failure", "detail"),
    [(httpx.ReadTimeout("slow"), "within 30 s"), (httpx.ConnectError("refused"), "the connection failed")],
)
def test_persistent_timeouts_and_connection_errors_end_in_halo_unavailable(failure, detail) -> None:
    fake = _fake()
    fake.queue("/api/invoice", *[failure] * 3)
    with pytest.raises(HaloUnavailable, match=detail) as caught:
        _ids(make_client(fake, max_attempts=3))
    assert "after 3 attempts" in caught.value.message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_persistently_malformed_json_ends_in_a_protocol_error() -> None:
    fake = _fake()
    fake.queue("/api/invoice", *[_truncated] * 6)
    with pytest.raises(ProtocolError, match="not valid JSON"):
        _ids(make_client(fake))


@pytest.mark.parametrize("status", [400, 405, 409, 422])
def test_other_client_errors_are_not_retried(status) -> None:
    fake = _fake()
    fake.queue("/api/invoice", httpx.Response(status, json={"[0].id": "bad"}))
    client = make_client(fake)
    with pytest.raises(HaloError, match=f"HTTP {status}"):
        _ids(client)
    assert len(fake.api_requests("/api/invoice")) == 1
    assert client.stats.retries == 0


def test_an_error_later_in_a_listing_keeps_the_pages_already_read() -> None:
    fake = FakeHalo(lists={"invoice": ("invoices", [invoice_row(i) for i in range(1, 31)])})
    first_page = lambda request: fake._list(request, "invoices", fake.lists["invoice"][1])  # noqa: E731
    fake.queue("/api/invoice", first_page, *[httpx.Response(503)] * 6)
    pages = make_client(fake, page_size=10).iter_invoices()
    assert len(next(pages).records) == 10
    with pytest.raises(HaloUnavailable):
        next(pages)


def test_the_http_timeout_comes_from_settings() -> None:
    fake = _fake()
    _ids(make_client(fake, http_timeout_s=7.5))
    timeout = fake.api_requests("/api/invoice")[0].extensions["timeout"]
    assert timeout == {"connect": 7.5, "read": 7.5, "write": 7.5, "pool": 7.5}
