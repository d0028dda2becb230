"""The client against the emulator served on a real loopback socket: real HTTP, real connection faults, real time."""

from __future__ import annotations

import time

import pytest

from core.errors import AuthError, HaloUnavailable
from core.halopsa.client import HaloClient
from core.halopsa.config import HaloConfig
from halo_emulator import EmulatorConfig, FaultRule, HaloEmulator, serve
from tests.support.client_fakes import emulator_client
from tests.support.clock import FakeClock


def _ids(pages) -> list[int]:
    return [record.halo_id for page in pages for record in page.records]


def _serve(invoices: int):
    emulator = HaloEmulator(EmulatorConfig(seed=11, invoices=invoices, rate_limit=None))
    with serve(emulator) as server:
        yield emulator, server.url


@pytest.fixture(scope="module")
def big_tenant():
    yield from _serve(20_000)


@pytest.fixture(scope="module")
def served_small():
    yield from _serve(2_000)


@pytest.fixture
def tenant(served_small):
    """A 2,000-invoice tenant on a loopback port, its faults cleared after each test."""
    emulator, url = served_small
    yield emulator, url
    emulator.clear_faults()


def test_a_large_listing_arrives_complete_over_http(big_tenant) -> None:
    emulator, url = big_tenant
    with emulator_client(emulator, base_url=url) as client:
        listed = _ids(client.iter_invoices())
    assert len(listed) == len(set(listed)) == 20_000
    assert set(listed) == set(emulator.invoices)
    assert client.stats.requests == 203  # AuthInfo, one token, two hundred pages of 100, the empty page


@pytest.mark.parametrize(
    "rule",
    [
        FaultRule(kind="drop", path="/api/invoice", times=2, after=1),
        FaultRule(kind="timeout", path="/api/invoice", times=1, after=3, delay_s=2.0),
        FaultRule(kind="truncated", path="/api/invoice", times=1, after=2),
        FaultRule(kind="status", path="/api/invoice", status=503, times=2),
        FaultRule(kind="rate_limit", path="/api/invoice", times=1, retry_after=9),
        FaultRule(kind="token_expiry", path="/api/invoice", times=1, after=4),
    ],
    ids=lambda rule: rule.kind,
)
def test_connection_faults_on_a_real_socket_are_recovered(tenant, rule) -> None:
    emulator, url = tenant
    emulator.add_fault(rule)
    clock = FakeClock()  # backoff waits are recorded, not slept
    with emulator_client(emulator, clock, base_url=url, page_size=200, http_timeout_s=0.5) as client:
        assert sorted(_ids(client.iter_invoices())) == sorted(emulator.invoices)
    assert rule.fired == rule.times
    assert client.stats.retries == (0 if rule.kind == "token_expiry" else rule.times)


def test_a_server_that_keeps_dropping_the_connection_is_unavailable(tenant) -> None:
    emulator, url = tenant
    emulator.add_fault(FaultRule(kind="drop", path="/api/invoice", times=None))
    client = emulator_client(emulator, FakeClock(), base_url=url, max_attempts=3)
    with client, pytest.raises(HaloUnavailable, match="after 3 attempts"):
        list(client.iter_invoices())


def test_wrong_secret_and_missing_permissions_over_http() -> None:
    emulator = HaloEmulator(EmulatorConfig(seed=3, invoices=50, granted_scopes=("edit:invoices", "read:customers")))
    with serve(emulator) as server:
        with pytest.raises(AuthError, match="rejected the client ID or secret"):
            emulator_client(emulator, base_url=server.url, secret="wrong").verify()
        check = emulator_client(emulator, base_url=server.url).verify()
    assert check.missing == ("admin:webhooks", "edit:contracts", "edit:customers", "read:contracts")


def test_a_scaled_rate_limit_in_real_time_sees_no_429() -> None:
    emulator = HaloEmulator(EmulatorConfig(seed=5, invoices=3000, rate_limit=(10, 0.5), count_token_requests=True))
    config = HaloConfig(page_size=100, rate_limit_requests=10, rate_limit_window_s=0.5, allow_local_domains=True)
    with serve(emulator) as server:
        client = HaloClient(  # real clock and sleep on both sides
            base_url=server.url,
            client_id=emulator.client_id,
            client_secret=emulator.client_secret,
            config=config,
        )
        started = time.monotonic()
        with client:
            assert len(_ids(client.iter_invoices())) == 3000
        elapsed = time.monotonic() - started
    assert client.stats.requests == 33  # AuthInfo, a token, 30 full pages, the empty page
    assert emulator.stats.rate_limited == 0 and client.stats.rate_limited_responses == 0
    assert elapsed >= 3 * 0.5  # (ceil(33 / 10) - 1) windows: the budget really paced the listing
