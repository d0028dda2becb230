"""Shared helpers for the emulator tests: a hand-driven clock and authorised clients over MockTransport."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from halo_emulator import HaloEmulator
from tests.support.clock import FakeClock
from tests.support.emulator_api import BASE_URL, authorise


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api() -> Iterator[Callable[..., httpx.Client]]:
    """`api(emu)` -> an httpx.Client on the emulator's MockTransport, already holding a token."""
    clients: list[httpx.Client] = []

    def make(emu: HaloEmulator, *, token: bool = True, **form: str) -> httpx.Client:
        client = httpx.Client(base_url=BASE_URL, transport=emu.transport())
        clients.append(client)
        if token:
            authorise(client, emu, **form)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture(scope="module")
def small_emu() -> HaloEmulator:
    """A read-only 1,000-invoice tenant shared by tests that only look (no rate limit)."""
    return HaloEmulator(invoices=1000, rate_limit=None)
