"""Talking to the emulator directly: token forms and authorised httpx clients (the emulator tests)."""

from __future__ import annotations

from typing import Any

import httpx

from halo_emulator import HaloEmulator

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
