"""Bounded waits: Retry-After capped at the rate window, a rate limit longer than the longest wait handed back to the
caller at once (never slept through), and an overall deadline per request that a dripped answer cannot escape."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpcore
import httpx
import pytest

from core.errors import HaloUnavailable, RateLimited
from core.halopsa import deadline
from core.halopsa.client import ClientEvent
from core.halopsa.deadline import DeadlineBackend, DeadlineStream
from halo_emulator import EmulatorConfig, FaultRule, HaloEmulator, serve
from tests.support.client_fakes import FakeHalo, emulator_client, invoice_row, make_client
from tests.support.clock import FakeClock

A_DAY = "86400"
FAR_FUTURE = format_datetime(datetime(2100, 12, 31, 23, 59, 59, tzinfo=UTC), usegmt=True)


def _fake() -> FakeHalo:
    return FakeHalo(lists={"invoice": ("invoices", [invoice_row(1), invoice_row(2)])})


def _ids(pages) -> list[int]:
    return [record.halo_id for page in pages for record in page.records]


@pytest.mark.parametrize("retry_after", [A_DAY, FAR_FUTURE], ids=["a-day", "far-future-date"])
def test_retry_after_is_capped_at_the_rate_window(retry_after) -> None:
    """HaloPSA's limit is a rolling 5-minute window: no honest wait is longer, so no wait here is either."""
    fake, clock = _fake(), FakeClock()
    fake.queue("/api/invoice", httpx.Response(429, headers={"Retry-After": retry_after}, text="Rate Limit Reached"))
    client = make_client(fake, clock, longest_wait_s=10_000)
    assert _ids(client.iter_invoices()) == [1, 2]
    assert clock.sleeps == [300.0]


@pytest.mark.parametrize("retry_after", [A_DAY, FAR_FUTURE, "301"], ids=["a-day", "far-future-date", "over-a-window"])
def test_a_rate_limit_longer_than_the_longest_wait_is_handed_back_at_once(retry_after) -> None:
    fake, clock, events = _fake(), FakeClock(), []
    fake.queue("/api/invoice", httpx.Response(429, headers={"Retry-After": retry_after}, text="Rate Limit Reached"))
    client = make_client(fake, clock, events=events)  # longest wait: 60 s by default
    with pytest.raises(RateLimited) as caught:
        _ids(client.iter_invoices())
    assert clock.sleeps == [] and len(fake.api_requests("/api/invoice")) == 1
    assert caught.value.retry_after == 300.0 and caught.value.transient
    assert "5 min" in caught.value.message and "kept" in caught.value.message
    assert events == [ClientEvent(kind="resume_later", seconds=300.0, reason=caught.value.message, status_code=429)]


def test_a_rate_limit_within_the_longest_wait_is_still_waited_out() -> None:
    fake, clock = _fake(), FakeClock()
    fake.queue("/api/invoice", httpx.Response(429, headers={"Retry-After": "45"}))
    assert _ids(make_client(fake, clock).iter_invoices()) == [1, 2]
    assert clock.sleeps == [45.0]


def test_a_5xx_asking_for_a_long_wait_fails_at_once_instead_of_sleeping() -> None:
    fake, clock = _fake(), FakeClock()
    fake.queue("/api/invoice", httpx.Response(503, headers={"Retry-After": "3600"}))
    with pytest.raises(HaloUnavailable) as caught:
        _ids(make_client(fake, clock).iter_invoices())
    assert clock.sleeps == [] and len(fake.api_requests("/api/invoice")) == 1
    assert "HTTP 503" in caught.value.message and "asked to wait 1 h" in caught.value.message


def test_the_rate_window_of_the_config_is_the_cap() -> None:
    fake, clock = _fake(), FakeClock()
    fake.queue("/api/invoice", httpx.Response(429, headers={"Retry-After": A_DAY}))
    _ids(make_client(fake, clock, rate_limit_window_s=30, longest_wait_s=40).iter_invoices())
    assert clock.sleeps == [30.0]


def test_a_rate_limit_at_the_token_endpoint_is_bounded_the_same_way() -> None:
    fake, clock = _fake(), FakeClock()
    fake.queue("/auth/token", httpx.Response(429, headers={"Retry-After": A_DAY}))
    with pytest.raises(RateLimited):
        make_client(fake, clock).verify()
    assert clock.sleeps == []


# -- the overall deadline of one request, over a real socket -----------------------------------------------------


@pytest.fixture
def dripping():
    """A tenant whose invoice pages trickle out 200 bytes a second: each read returns within a fraction of a second,
    so a per-read timeout never fires, while a whole page takes about half a minute."""
    emulator = HaloEmulator(EmulatorConfig(seed=7, invoices=50, rate_limit=None))
    rule = emulator.add_fault(FaultRule(kind="drip", path="/api/invoice", times=None, bytes_per_s=200))
    with serve(emulator) as server:
        yield emulator, server.url, rule


def test_a_dripped_answer_fails_within_the_request_deadline_with_a_readable_reason(dripping) -> None:
    emulator, url, rule = dripping
    client = emulator_client(emulator, base_url=url, page_size=20, http_timeout_s=5, request_deadline_s=0.5,
                             max_attempts=2, backoff_cap_s=0.01)  # fmt: skip
    with client, pytest.raises(HaloUnavailable) as caught:
        _ids(client.iter_invoices())
    assert rule.fired == 2  # each attempt cut off at its deadline, then given up
    message = caught.value.message
    assert "GET /api/Invoice" in message and "within 0.5 s" in message and "2 attempts" in message
    assert "too slowly" in message and "Traceback" not in message


def test_the_deadline_leaves_answers_that_arrive_in_time_alone(dripping) -> None:
    emulator, url, rule = dripping
    emulator.clear_faults()
    client = emulator_client(emulator, base_url=url, page_size=20, request_deadline_s=5)
    with client:
        assert sorted(_ids(client.iter_invoices())) == sorted(emulator.invoices)
    assert client.stats.retries == 0


def test_retry_after_in_the_past_or_unreadable_means_no_hint() -> None:
    fake, clock = _fake(), FakeClock()
    past = format_datetime(datetime.now(UTC) - timedelta(days=1), usegmt=True)
    fake.queue("/api/invoice", httpx.Response(429, headers={"Retry-After": past}),
               httpx.Response(429, headers={"Retry-After": "soon"}))  # fmt: skip
    _ids(make_client(fake, clock).iter_invoices())
    assert 1 <= clock.sleeps[0] <= 2 and 2 <= clock.sleeps[1] <= 3  # the backoff alone


class _Stream(httpcore.NetworkStream):
    """A connection that records the timeout of each operation."""

    def __init__(self) -> None:
        self.timeouts: list[float | None] = []

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.timeouts.append(timeout)
        return b"x"

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.timeouts.append(timeout)

    def close(self) -> None:
        pass

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:
        self.timeouts.append(timeout)
        return self


class _Backend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self.stream = _Stream()

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None) -> httpcore.NetworkStream:
        self.stream.timeouts.append(timeout)
        return self.stream


def test_every_operation_of_a_connection_gets_at_most_the_time_left_and_fails_once_it_is_gone() -> None:
    inner = _Backend()
    backend = DeadlineBackend(inner)
    stream = backend.connect_tcp("acme.halopsa.com", 443, timeout=30)  # outside an exchange: untouched
    tls = stream.start_tls(ssl.create_default_context(), "acme.halopsa.com", timeout=30)
    assert isinstance(tls, DeadlineStream) and inner.stream.timeouts == [30, 30]
    with deadline.within(5):
        tls.write(b"GET", timeout=30)
        tls.read(10, timeout=None)
        tls.read(10, timeout=1)
    assert all(0 < t <= 5 for t in inner.stream.timeouts[2:4]) and inner.stream.timeouts[4] == 1
    with deadline.within(0) as passed:
        assert passed()
        for operation, error in [(lambda: tls.read(10, timeout=30), httpcore.ReadTimeout),
                                 (lambda: tls.write(b"x", timeout=30), httpcore.WriteTimeout),
                                 (lambda: backend.connect_tcp("acme.halopsa.com", 443), httpcore.ConnectTimeout)]:
            with pytest.raises(error):
                operation()
    assert len(inner.stream.timeouts) == 5  # nothing reached the connection after the deadline
