"""Talking to the emulator directly: token forms and authorised httpx clients (the emulator tests), and holding one of
its pages for as long as a test needs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from core.actions.connect import ConnectionForm
from halo_emulator import FaultRule, HaloEmulator, serve

BASE_URL = "https://acme.halopsa.com"


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


class HeldPage:
    """One invoice page the emulator holds until the test lets it go, however loaded the machine: a "slow" fault
    whose wait is this object's Event (at most a minute). Build the emulator with `emulator`, then `hold` a page."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def emulator(self, **config: Any) -> HaloEmulator:
        return HaloEmulator(sleep=self.released.wait, **config)

    def hold(self, emulator: HaloEmulator, page: int) -> FaultRule:
        """Hold the first request for this invoice page; `fired` turns 1 once a client waits on it."""
        return emulator.add_fault(FaultRule(kind="slow", path="/api/invoice", on_page=page, times=1, delay_s=60))

    def release(self) -> None:
        self.released.set()


@contextmanager
def served_with_held_page(**config: Any) -> Iterator[tuple[HaloEmulator, str, HeldPage]]:
    """An emulator (`config`) on a loopback socket, its URL, and the page it may hold; the page let go at the end."""
    held = HeldPage()
    with serve(held.emulator(**config)) as server:
        try:
            yield server.emulator, server.url, held
        finally:
            held.release()


def connection_form(emulator: HaloEmulator, url: str, name: str = "Acme MSP") -> ConnectionForm:
    """The Connection page's form for a partner on `emulator` served at `url`."""
    return ConnectionForm(partner_name=name, app_domain=url, client_id=emulator.client_id,
                          client_secret=emulator.client_secret)
