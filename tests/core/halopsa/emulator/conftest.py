"""Shared helpers for the emulator tests: a hand-driven clock and authorised clients over MockTransport."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from core.halopsa.emulator import HaloEmulator

BASE_URL = "https://acme.halopsa.com"


class FakeClock:
    """A monotonic clock that only moves when told to; also records sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def token_form(emu: HaloEmulator, **overrides: str) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "scope": "all",
    }
    form.update(overrides)
    return form


def authorise(client: httpx.Client, emu: HaloEmulator, **form: str) -> dict[str, Any]:
    """Fetch a token and put it on the client; returns the token response."""
    response = client.post("/auth/token", data=token_form(emu, **form))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    client.headers["Authorization"] = f"Bearer {body['access_token']}"
    return body


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
